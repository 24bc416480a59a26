"""FKD-style stored labels (the ``sre2l`` protocol above 32 px): each crop of each epoch has its own label, the
replay trains on exactly the crops the labels were computed on, and relabelling resumes per epoch."""
import pytest
import torch

from distillbench.testing import invoke
from distillbench_eval import fkd
from distillbench_eval.protocols import Settings
from distillbench_eval.training import Replay, epoch_file

SETTINGS = Settings(labels="fkd", epochs=3, batch_size=8, crop_scale_min=0.08, mix="cutmix", mix_alpha=1.0,
                    temperature=20.0, amp=False, flip=True)


def teacher():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


@pytest.fixture
def plan(tmp_path):
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 4
    folder = fkd.relabel(tmp_path / "fkd", images, labels, teacher(), SETTINGS, lambda x: x * 2 - 1, "cpu")
    return folder, images, labels


def test_each_crop_of_each_epoch_has_its_own_label(plan):
    from safetensors.torch import load_file
    folder, images, _ = plan
    epochs = [load_file(epoch_file(folder, e)) for e in range(3)]
    assert sorted(p.name for p in folder.iterdir()) == [f"epoch_{e:04d}.safetensors" for e in range(3)]
    for p in epochs:
        assert sorted(p["order"].tolist()) == list(range(20)) and p["logits"].dtype == torch.float16
    first, second = ({int(i): (c, l) for i, c, l in zip(p["order"], p["crops"], p["logits"])} for p in epochs[:2])
    for image in range(20):  # the same image, another epoch: another crop, another label
        assert not torch.equal(first[image][0], second[image][0])
        assert not torch.equal(first[image][1], second[image][1])


def test_the_replay_trains_on_the_crops_the_labels_were_computed_on(plan):
    folder, images, labels = plan
    model = teacher().eval()
    replay = Replay(folder, images, labels, SETTINGS, lambda x: x * 2 - 1, "cpu", seed=123)
    batches = list(replay.epoch(1, SETTINGS.batch_size))
    assert [len(b.index) for b in batches] == [8, 8, 4]
    for batch in batches:
        with torch.no_grad():
            assert torch.allclose(model(batch.x), batch.target.float(), atol=2e-3)  # fp16 storage
        assert torch.equal(batch.y_mixed, labels[batch.index[batch.perm]])


def test_relabelling_resumes_at_the_missing_epoch_with_the_same_plan(plan):
    folder, images, labels = plan
    before = epoch_file(folder, 1).read_bytes()
    epoch_file(folder, 1).unlink()
    stamps = {e: epoch_file(folder, e).stat().st_mtime_ns for e in (0, 2)}
    fkd.relabel(folder, images, labels, teacher(), SETTINGS, lambda x: x * 2 - 1, "cpu")
    assert epoch_file(folder, 1).read_bytes() == before
    assert {e: epoch_file(folder, e).stat().st_mtime_ns for e in (0, 2)} == stamps


def test_sre2l_stores_one_fkd_plan_that_every_seed_replays_and_runs_its_small_recipe(model_cache, root):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    made = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--root", root, env=env)
    assert made.exit_code == 0, made.output
    (run,) = (root / "runs").iterdir()
    result = invoke("evaluate", run.name, "--protocol", "sre2l", "--set", "labels=fkd", "--set", "epochs=2",
                    "--set", "mix=cutmix", "--set", "augment=resized_crop", "--repeats", "2", "--root", root, env=env)
    assert result.exit_code == 0, result.output
    (plan_dir,) = run.glob("fkd-*")
    assert sorted(p.name for p in plan_dir.iterdir()) == ["epoch_0000.safetensors", "epoch_0001.safetensors"]
    small = invoke("evaluate", run.name, "--protocol", "sre2l", "--set", "epochs=1", "--repeats", "1", "--root", root,
                   env=env)  # up to 32 px: SRe2L's CIFAR recipe, online labels from a teacher in train mode
    assert small.exit_code == 0, small.output
    assert len(list(run.glob("fkd-*"))) == 1
    from distillbench.store import Store
    df = Store(root).evaluations("digits")
    assert len(df) == 3 and set(df["protocol"]) == {"sre2l"} and set(df["labels"]) == {"soft"}
    assert df["final_acc"].between(0, 1).all() and not df["final_acc"].isna().any()
