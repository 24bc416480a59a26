"""A student's or a teacher's training interrupted mid-way (an exception, a SIGKILL) resumes from its checkpoint
to the uninterrupted result."""
import signal

import pytest
import torch

from distillbench.datasets import TensorImageSet
from distillbench.plugins import registry
from distillbench.store import Store
from distillbench.teachers import Normalizer
from distillbench.testing import invoke, start, wait_for
from distillbench_eval import training
from distillbench_eval.protocols import Settings


def train_conv3(checkpoint=None):
    """Six epochs of crops, flips, CutMix and an online teacher on random 16 px images."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.arange(40) % 4
    conv3 = registry("model").get("conv3")
    torch.manual_seed(1)
    teacher = conv3.build(4, 16).eval()
    settings = Settings(epochs=6, eval_every=2, eval_after=0)
    torch.manual_seed(2)
    student = conv3.build(4, 16)
    result = training.train_model(student, (images, labels), TensorImageSet(images, labels, range(4)), settings,
                                  batch_size=16, lr=1e-3,
                                  normalize=Normalizer([0.5] * 3, [0.5] * 3, "cpu"), device="cpu", seed=3,
                                  teacher=teacher, show_progress=False, checkpoint=checkpoint)
    return student, result


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
