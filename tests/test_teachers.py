"""Teachers: a teacher's input normalisation is part of its identity, and inputs normalised another way are
converted to the one it was trained with."""
import torch

from distillbench.plugins import registry
from distillbench.teachers import load_ensemble, normalizer, save_teacher


def test_a_teacher_fed_another_normalisation_sees_its_own(tmp_path):
    spec = registry("dataset").get("cifar10")
    torch.manual_seed(0)
    model = registry("model").get("conv3").build(10, 32).eval()
    save_teacher(tmp_path / "t.pt", model, {"arch": "conv3", "num_classes": 10, "normalization": "dataset"})
    x = torch.rand(4, 3, 32, 32)
    expected = model(normalizer(spec, "dataset", "cpu")(x))
    for fed in ("dataset", "imagenet"):
        teacher, (info,) = load_ensemble([str(tmp_path / "t.pt")], "conv3", spec, 10, tmp_path, "cpu", fed)
        with torch.no_grad():
            assert torch.allclose(teacher(normalizer(spec, fed, "cpu")(x)), expected, atol=1e-5), fed
        assert info["normalization"] == "dataset" and info["fed"] == fed
    with torch.no_grad():  # the bug this guards against: ImageNet-normalised inputs to a dataset-normalised teacher
        assert not torch.allclose(model(normalizer(spec, "imagenet", "cpu")(x)), expected, atol=1e-3)


def test_a_checkpoint_without_a_recorded_normalisation_is_assumed_to_expect_what_it_is_fed(tmp_path):
    spec = registry("dataset").get("cifar10")
    torch.save({"model": registry("model").get("conv3").build(10, 32).state_dict()}, tmp_path / "rded.pth")
    _, (info,) = load_ensemble([f"conv3={tmp_path / 'rded.pth'}"], "conv3", spec, 10, tmp_path, "cpu", "imagenet")
    assert info["normalization"] == "assumed imagenet"

