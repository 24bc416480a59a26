"""A D3HR run killed by SIGKILL mid-class resumes to the uninterrupted set, without mapping a class twice."""
import signal

from distillbench.store import Store
from distillbench.testing import invoke, png_bytes_of, start, wait_for

D3HR = ["run", "--method", "d3hr", "--dataset", "digits", "--ipc", "2", "--option", "m=30000",
        "--option", "num_inference_steps=20", "--option", "inversion_steps=13"]


def test_sigkill_mid_class_then_resume_ends_byte_identical(model_cache, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    assert invoke(*D3HR, "--root", tmp_path / "whole", env=env).exit_code == 0
    (reference,) = (tmp_path / "whole" / "runs").iterdir()
    (mapped_whole,) = (tmp_path / "whole" / "scratch" / "shared" / "d3hr-stats").iterdir()

    root = tmp_path / "killed"
    proc = start(*D3HR, "--root", root, env=env)
    stats = root / "scratch" / "shared" / "d3hr-stats" / mapped_whole.name  # the same inputs, the same folder
    wait_for(stats / "class-00003.safetensors", proc)  # class 3 mapped, its images not yet written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = root / "runs" / f"{reference.name}.partial"
    assert not (root / "runs" / reference.name).exists() and not (partial / "manifest.json").exists()
    finished = sorted(p.stem for p in (partial / ".units").glob("*.json"))
    assert finished == [f"class-{c:05d}" for c in range(3)]
    mapped = {p.name: p.stat().st_mtime_ns for p in stats.glob("*.safetensors")}

    assert invoke(*D3HR, "--root", root, env=env).exit_code == 0
    resumed = root / "runs" / reference.name
    assert png_bytes_of(resumed) == png_bytes_of(reference)
    assert (resumed / "stats.safetensors").read_bytes() == (reference / "stats.safetensors").read_bytes()
    assert all((stats / name).stat().st_mtime_ns == mtime for name, mtime in mapped.items())  # not redone
    assert not partial.exists() and Store(root).run_ids() == [reference.name]
