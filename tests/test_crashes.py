"""Interruptions: a run killed by SIGKILL mid-class, or mid-way through a student's training, resumes
to the uninterrupted result, and processes writing to one root at the same time all land their records."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from conftest import HANG_SECONDS, communicate, hang, invoke
from distillbench.plugins import registry
from distillbench.store import Store
from distillbench.teachers import Normalizer
from distillbench_eval import training
from distillbench_eval.protocols import PROTOCOLS
from test_runner import png_bytes_of

D3HR = ["run", "--method", "d3hr", "--dataset", "digits", "--ipc", "2", "--option", "m=30000",
        "--option", "num_inference_steps=20", "--option", "inversion_steps=13"]


def start(*args, env, stdout=subprocess.DEVNULL):
    return subprocess.Popen([sys.executable, "-m", "distillbench", *map(str, args)], env={**os.environ, **env},
                            stdout=stdout, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal


def wait_for(path, proc, count=1):
    """Until ``count`` files match ``path`` (a name or a glob pattern); the run must still be going."""
    deadline = time.monotonic() + HANG_SECONDS
    while len(list(path.parent.glob(path.name))) < count:
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.stderr.read()}"
        if time.monotonic() > deadline:
            raise hang(f"waiting for {path}")
        time.sleep(0.01)


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


def train_conv3(checkpoint=None):
    """Six epochs of the rded protocol (crops, flips, CutMix, an online teacher) on random 16 px images."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.arange(40) % 4
    conv3 = registry("model").get("conv3")
    torch.manual_seed(1)
    teacher = conv3.build(4, 16).eval()
    settings = replace(PROTOCOLS["rded"].settings, epochs=6, eval_every=2, eval_after=0)
    torch.manual_seed(2)
    student = conv3.build(4, 16)
    result = training.train_model(student, (images, labels), (images, labels), settings, batch_size=16, lr=1e-3,
                                  normalize=Normalizer([0.5] * 3, [0.5] * 3, "cpu"), device="cpu", seed=3,
                                  teacher=teacher, show_progress=False, checkpoint=checkpoint)
    return student, result


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


def test_training_interrupted_mid_way_resumes_to_the_same_weights(tmp_path, monkeypatch):
    uninterrupted, expected = train_conv3()
    check_loss = training.check_loss

    def crash_in_epoch_four(value, name, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        check_loss(value, name, epoch)

    path = tmp_path / "state.pt"
    monkeypatch.setattr(training, "check_loss", crash_in_epoch_four)
    with pytest.raises(KeyboardInterrupt):
        train_conv3(training.Checkpoint(path, every_seconds=0))
    state = torch.load(path, weights_only=True)
    assert state["next_epoch"] == 3
    monkeypatch.setattr(training, "check_loss", check_loss)
    torch.save({**state, "device": "cuda"}, tmp_path / "elsewhere.pt")
    _, afresh = train_conv3(training.Checkpoint(tmp_path / "elsewhere.pt", every_seconds=0))
    assert afresh["resumed_at_epochs"] == [] and afresh["final_acc"] == expected["final_acc"]
    resumed, result = train_conv3(training.Checkpoint(path, every_seconds=0))
    assert result["resumed_at_epochs"] == [3] and expected["resumed_at_epochs"] == []
    for key in ("final_acc", "best_acc", "best_epoch", "evaluated_epochs"):
        assert result[key] == expected[key]
    for (name, tensor), reference in zip(resumed.state_dict().items(), uninterrupted.state_dict().values()):
        assert torch.equal(tensor, reference), name


def test_teacher_training_interrupted_mid_way_resumes_to_the_same_file(model_cache, tmp_path, monkeypatch):
    train = ["train-teacher", "--dataset", "digits", "--arch", "conv3", "--epochs", "3"]  # as model_cache's teacher
    check_loss = training.check_loss

    def crash_in_epoch_three(value, name, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        check_loss(value, name, epoch)

    env = {"DISTILLBENCH_CACHE": str(tmp_path / "killed"), "DISTILLBENCH_CHECKPOINT_SECONDS": "0"}
    monkeypatch.setattr(training, "check_loss", crash_in_epoch_three)
    assert invoke(*train, env=env).exit_code != 0
    teachers = tmp_path / "killed" / "teachers"
    assert [p.name for p in teachers.iterdir()] == [p.name for p in teachers.glob("digits-conv3-*.checkpoint.pt")]
    monkeypatch.setattr(training, "check_loss", check_loss)
    resumed = invoke(*train, env=env)
    assert resumed.exit_code == 0 and "resuming at epoch 3 of 3" in resumed.stderr
    assert sorted(p.name for p in teachers.iterdir()) == ["digits-conv3.json", "digits-conv3.pt"]
    assert (teachers / "digits-conv3.pt").read_bytes() == (model_cache / "teachers/digits-conv3.pt").read_bytes()


def test_sigkill_mid_student_training_then_resume_gives_the_uninterrupted_record(model_cache, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    run = ["run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--evaluate", "--protocol", "rded",
           "--set", "epochs=60", "--repeats", "1", "--student", "conv3"]  # the kill must land before the end
    assert invoke(*run, "--root", tmp_path / "whole", env=env).exit_code == 0
    (expected,) = Store(tmp_path / "whole").evaluations("digits").to_dict("records")

    root = tmp_path / "killed"
    proc = start(*run, "--root", root, env={**env, "DISTILLBENCH_CHECKPOINT_SECONDS": "0"})
    wait_for(root / "scratch" / "evaluations" / "*.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert Store(root).evaluations("digits").empty
    resumed = invoke(*run, "--root", root, env=env)
    assert resumed.exit_code == 0 and "resuming at epoch" in resumed.stderr
    (record,) = Store(root).evaluations("digits").to_dict("records")
    assert record["final_acc"] == expected["final_acc"] and record["identity"] == expected["identity"]
    assert not list((root / "scratch" / "evaluations").glob("*.pt"))  # removed once the record is stored
