"""Real processes: a run killed by SIGKILL mid-class resumes to the uninterrupted result, and
processes writing to one root at the same time all land their records."""
import os
import signal
import subprocess
import sys
import time

from conftest import run_subprocess
from distillbench.store import Store
from test_runner import png_bytes_of

D3HR = ["run", "--method", "d3hr", "--dataset", "digits", "--ipc", "2", "--option", "m=30000",
        "--option", "num_inference_steps=20", "--option", "inversion_steps=13"]


def start(*args, env):
    return subprocess.Popen([sys.executable, "-m", "distillbench", *map(str, args)], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def test_sigkill_mid_class_then_resume_ends_byte_identical(model_cache, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    run_subprocess(*D3HR, "--root", tmp_path / "whole", env=env, check=True)
    (reference,) = (tmp_path / "whole" / "runs").iterdir()

    root = tmp_path / "killed"
    proc = start(*D3HR, "--root", root, env=env)
    stats = root / "scratch" / reference.name / "stats"
    wait_for(stats / "class-00003.safetensors", proc)  # class 3 mapped, its images not yet written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = root / "runs" / f"{reference.name}.partial"
    assert not (root / "runs" / reference.name).exists() and not (partial / "manifest.json").exists()
    finished = sorted(p.stem for p in (partial / ".units").glob("*.json"))
    assert finished == [f"class-{c:05d}" for c in range(3)]
    mapped = {p.name: p.stat().st_mtime_ns for p in stats.glob("*.safetensors")}

    run_subprocess(*D3HR, "--root", root, env=env, check=True)
    resumed = root / "runs" / reference.name
    assert png_bytes_of(resumed) == png_bytes_of(reference)
    assert (resumed / "stats.safetensors").read_bytes() == (reference / "stats.safetensors").read_bytes()
    assert all((stats / name).stat().st_mtime_ns == mtime for name, mtime in mapped.items())  # not redone
    assert not partial.exists() and Store(root).run_ids() == [reference.name]


def test_concurrent_runs_on_one_root_all_land(tmp_path):
    evaluate = ["--evaluate", "--protocol", "hard-label", "--set", "epochs=2", "--repeats", "1"]
    runs = [["run", "--method", "random", "--dataset", "digits", "--ipc", "3", "--seed", seed, *evaluate,
             "--root", tmp_path] for seed in (0, 1, 0)]  # the third repeats the first, at the same time
    procs = [start(*args, env={}) for args in runs]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    store = Store(tmp_path)
    assert sorted(store.run_ids()) == sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(store.run_ids()) == 2
    evaluations = store.evaluations("digits")
    assert evaluations["run_id"].value_counts().tolist() == [1, 1]  # the repeat's evaluation is the same one
