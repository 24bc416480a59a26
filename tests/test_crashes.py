"""Interruptions in the core: Ctrl-C keeps the finished set, and processes writing to one root at the same time
all land their records, each evaluation trial run once."""
import signal
import sqlite3
import subprocess

from distillbench.store import Store
from distillbench.testing import communicate, invoke, start, wait_for


def test_concurrent_runs_on_one_root_all_land(tmp_path):
    evaluate = ["--evaluate", "--protocol", "hard-label", "--set", "epochs=10", "--repeats", "1"]
    runs = [["run", "--method", "random", "--dataset", "digits", "--ipc", "3", "--seed", seed, *evaluate,
             "--root", tmp_path] for seed in (0, 1, 0)]  # the third repeats the first, at the same time
    procs = [start(*args, env={}) for args in runs]
    for proc in procs:
        _, err = communicate(proc, "a concurrent run")
        assert proc.returncode == 0, err
    store = Store(tmp_path)
    assert sorted(store.run_ids()) == sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(store.run_ids()) == 2
    evaluations = store.evaluations("digits")
    assert evaluations["run_id"].value_counts().tolist() == [1, 1]  # the repeat's evaluation is the same one
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone() == (2,)  # and it was trained once
    assert not list((tmp_path / "scratch").rglob("*.lock"))  # the locks went with their sets and records


def test_two_evaluations_of_one_set_share_its_seeds(tmp_path):
    """A second process evaluating the same set takes the seed that the first is not training instead of
    waiting for it, then reuses the first one's record: each seed is trained once, both at the same time."""
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "3", "--root", tmp_path).exit_code == 0
    (run_id,) = Store(tmp_path).run_ids()
    evaluate = ["evaluate", run_id, "--protocol", "hard-label", "--set", "epochs=50", "--repeats", "2",
                "--root", tmp_path]  # seconds of training: the first must still hold seed 0 when it is paused
    locks = tmp_path / "scratch" / "evaluations" / "*.lock"
    first = start(*evaluate, env={}, stdout=subprocess.PIPE)
    wait_for(locks, first)  # it holds seed 0
    first.send_signal(signal.SIGSTOP)  # so that it cannot finish seed 0 and take seed 1 before the second starts
    try:
        second = start(*evaluate, env={}, stdout=subprocess.PIPE)
        wait_for(locks, second, count=2)
    finally:
        first.send_signal(signal.SIGCONT)  # even when the second fails, or the first would stay stopped for good
    outputs = [communicate(proc, "an evaluation") for proc in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    trained = [[line.split(":")[0].split()[-1] for line in out.splitlines() if "stored earlier" not in line]
               for out, _ in outputs]
    assert trained == [["seed=0"], ["seed=1"]], outputs


def test_ctrl_c_is_one_line_and_keeps_the_finished_set(tmp_path):
    proc = start("run", "--method", "random", "--dataset", "digits", "--ipc", "5", "--evaluate", "--protocol",
                 "hard-label", "--set", "epochs=300", "--repeats", "1", "--root", tmp_path, env={})
    wait_for(tmp_path / "scratch" / "evaluations" / "*.lock", proc)  # distilled and recorded; a student is training
    proc.send_signal(signal.SIGINT)
    _, err = communicate(proc, "the interrupted run")
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.splitlines()[-1] == ("Error: interrupted; what was finished is kept, and the same command resumes "
                                    "from there")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == Store(tmp_path).run_ids()
