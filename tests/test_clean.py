"""`distillbench clean`: what killed processes leave under a root is listed and removed, resumable work
is kept unless asked, nothing is touched while a process works there, and lock files may be deleted."""
import os
import threading
import time

from distillbench.testing import HANG_SECONDS, hang, invoke
from distillbench import atomic


def killed_leftovers(root):
    """The files that killed processes leave, as the runner, the evaluator and D3HR name them."""
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--root", root).exit_code == 0
    (finished,) = (root / "runs").iterdir()
    scratch = root / "scratch"
    files = {
        "finished_scratch": scratch / finished.name / "lock",  # killed after the set was moved into place
        "orphan_scratch": scratch / "digits-d3hr-ipc2-seed0-00000000" / "lock",  # killed before any unit
        "partial_scratch": scratch / "digits-rded-ipc2-seed0-11111111" / "lock",
        "partial_unit": root / "runs" / "digits-rded-ipc2-seed0-11111111.partial" / "000_0" / "00000.png",
        "seed_lock": scratch / "evaluations" / "0f0f.lock",
        "seed_checkpoint": scratch / "evaluations" / "0f0f.pt",
        "stats_lock": scratch / "shared" / "d3hr-stats" / "ab12" / "class-00000.lock",
        "stats": scratch / "shared" / "d3hr-stats" / "ab12" / "class-00000.safetensors",
        "old_temp": finished / ".grid.png.x1y2.tmp",
        "new_temp": finished / ".grid.png.z3w4.tmp",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    two_hours_ago = time.time() - 7200
    os.utime(files["old_temp"], (two_hours_ago, two_hours_ago))
    return files


def test_clean_deletes_leftovers_and_keeps_resumable_work_unless_all(root):
    files = killed_leftovers(root)
    listed = invoke("clean", "--dry-run", "--root", root)
    assert listed.exit_code == 0 and all(path.exists() for path in files.values())
    assert listed.output.count("would delete:") == 5 and listed.output.count("kept (--all deletes it):") == 3

    result = invoke("clean", "--root", root)
    assert result.exit_code == 0, result.output
    gone = {"finished_scratch", "orphan_scratch", "seed_lock", "stats_lock", "old_temp"}
    assert {name for name, path in files.items() if not path.exists()} == gone
    assert not files["orphan_scratch"].parent.exists() and not files["finished_scratch"].parent.exists()
    assert result.output.splitlines()[-1] == f"5 of 8 leftovers deleted under {root}"

    result = invoke("clean", "--all", "--root", root)
    assert result.exit_code == 0
    assert {name for name, path in files.items() if path.exists()} == {"stats", "new_temp"}
    assert not files["partial_unit"].parents[1].exists()
    assert invoke("clean", "--root", root).output.strip() == f"nothing left over under {root}"


def test_clean_touches_nothing_while_a_process_works_under_the_root(root):
    files = killed_leftovers(root)
    with atomic.exclusive(files["seed_lock"]):  # another process training a student (flock is per open file)
        result = invoke("clean", "--all", "--root", root)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: a process is working under {root} (it holds {files['seed_lock']}); run "
                                     "`distillbench clean` once it has finished")
    assert all(path.exists() for path in files.values())


def test_a_lock_deleted_by_its_holder_is_not_held_twice(tmp_path, monkeypatch):
    lock, held = tmp_path / "seed.lock", []
    opened, took, release = threading.Event(), threading.Event(), threading.Event()
    flock = atomic.fcntl.flock

    def flock_and_say_so(f, operation):
        if threading.current_thread() is waiter:
            opened.set()  # the waiter has the file that the holder is about to delete open
        return flock(f, operation)

    def wait_for_the_lock():
        with atomic.exclusive(lock) as got:
            held.append(got)
            took.set()
            release.wait()

    monkeypatch.setattr(atomic.fcntl, "flock", flock_and_say_so)
    waiter = threading.Thread(target=wait_for_the_lock)
    with atomic.exclusive(lock):
        waiter.start()
        if not opened.wait(timeout=HANG_SECONDS):
            raise hang("the waiting thread")
        lock.unlink()
    try:
        if not took.wait(timeout=HANG_SECONDS):  # the waiter now takes the lock, on the new file at the path
            raise hang("the waiting thread")
        assert held == [True] and lock.exists()
        with atomic.exclusive(lock, wait=False) as newcomer:
            assert not newcomer  # a newcomer finds it held: not two holders of "the" lock
    finally:
        release.set()
        waiter.join(timeout=HANG_SECONDS)
