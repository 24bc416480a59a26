"""Published weights by name, offline: torchvision's hub cache, timm's and diffusers' Hugging Face cache, RDED's
observer layout.  The tests write small models in the real on-disk layouts; nothing is downloaded."""
import json
import os
import sys
from types import SimpleNamespace

import pytest
import torch

from distillbench.errors import UsageError
from distillbench.plugins import registry
from distillbench.teachers import load_ensemble, load_teacher, normalizer
from distillbench.testing import copied_into_hub_cache, hub_snapshot, run_command, run_subprocess

SPEC = SimpleNamespace(name="imagenet-like", image_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def test_torchvision_weights_load_from_torchs_cache_by_name(tmp_path, monkeypatch):
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UsageError, match=r"'torchvision:squeezenet1_0' is not in torch's hub cache .*"
                                         r"`distillbench download torchvision:squeezenet1_0`"):
        load_ensemble(["torchvision:squeezenet1_0"], None, SPEC, 1000, tmp_path, "cpu", "dataset")
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_0().eval()
    url = torchvision.models.SqueezeNet1_0_Weights.IMAGENET1K_V1.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(model.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    teacher, (info,) = load_ensemble(["torchvision:squeezenet1_0"], None, SPEC, 1000, tmp_path, "cpu", "dataset")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(normalizer(SPEC, "imagenet", "cpu")(x))
        assert torch.allclose(teacher(normalizer(SPEC, "dataset", "cpu")(x)), expected, atol=1e-4)
    assert info["arch"] == "torchvision:squeezenet1_0.IMAGENET1K_V1" and info["normalization"] == "imagenet"
    assert info["accuracy"] == pytest.approx(0.58092) and info["sha256"].startswith("sha256:")
    with pytest.raises(UsageError, match="has no weights 'NOPE'; choose one of: IMAGENET1K_V1"):
        load_ensemble(["torchvision:squeezenet1_0.NOPE"], None, SPEC, 1000, tmp_path, "cpu", "dataset")
    with pytest.raises(UsageError, match="predicts 1000 classes but the dataset has 10"):
        load_ensemble(["torchvision:squeezenet1_0"], None, SPEC, 10, tmp_path, "cpu", "dataset")


TIMM_CHECK = """
import json, sys, torch
from types import SimpleNamespace
from distillbench.teachers import load_ensemble
spec = SimpleNamespace(name="x", image_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
teacher, (info,) = load_ensemble(["timm:test_resnet.r160_in1k"], None, spec, 1000, ".", "cpu", "dataset")
print(json.dumps({**info, "logits": teacher(torch.zeros(1, 3, 64, 64)).flatten()[:3].tolist()}))
"""


def test_timm_weights_load_from_the_hugging_face_cache_by_name(tmp_path):
    import timm
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = timm.create_model("test_resnet.r160_in1k").eval()
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    missing = run_command([sys.executable, "-c", TIMM_CHECK], env={**os.environ, **env})
    assert missing.returncode != 0 and "`distillbench download timm:test_resnet.r160_in1k`" in missing.stderr
    hub_snapshot(tmp_path / "hub", "timm/test_resnet.r160_in1k",
                 {"model.safetensors": lambda p: save_file(model.state_dict(), p)})
    found = run_command([sys.executable, "-c", TIMM_CHECK], env={**os.environ, **env})
    assert found.returncode == 0, found.stderr
    info = json.loads(found.stdout)
    assert info["arch"] == "timm:test_resnet.r160_in1k" and info["normalization"] == {"mean": [0.5] * 3,
                                                                                     "std": [0.5] * 3}
    with torch.no_grad():  # fed dataset-normalised zeros, i.e. pixels at the mean 0.5: what the model sees too
        expected = model(torch.zeros(1, 3, 64, 64)).flatten()[:3]
    assert torch.allclose(torch.tensor(info["logits"]), expected, atol=1e-4)


def test_rdeds_released_convnet_observers_load_in_their_own_layout(tmp_path):
    conv3 = registry("model").get("conv3").build(10, 32).eval()
    rded = {}
    for key, value in conv3.state_dict().items():  # RDED's ConvNet names: layers.conv.D, layers.norm.D, classifier
        index, field = key.split(".")
        index = int(index)
        name = "classifier" if index == 13 else f"layers.{'conv' if index % 4 == 0 else 'norm'}.{index // 4}"
        rded[f"{name}.{field}"] = value
    torch.save({"model": rded}, tmp_path / "cifar10_conv3.pth")
    teacher, info = load_teacher(tmp_path / "cifar10_conv3.pth", "conv3", registry("dataset").get("cifar10"), 10)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(teacher(x), conv3(x))


def test_a_backbone_by_hub_id_loads_from_the_hugging_face_cache_offline(tmp_path):
    from distillbench.diffusion.backbone import SHIPPED, weights_fingerprint
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    run = ["run", "--method", "d3hr", "--dataset", "digits", "--ipc", "1", "--option", "m=64", "--option",
           "num_inference_steps=10", "--option", "inversion_steps=6", "--root", tmp_path / "root"]
    missing = run_subprocess(*run, "--option", "backbone=facebook/DiT-XL-2-256", env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stderr.startswith("Error: 'facebook/DiT-XL-2-256' is not in the Hugging Face cache; fetch it "
                                     "once with `distillbench download facebook/DiT-XL-2-256`")
    copied_into_hub_cache(tmp_path / "hub", "tiny/mnist-dit", SHIPPED / "mnist5k")
    found = run_subprocess(*run, "--option", "backbone=tiny/mnist-dit", env=env)
    assert found.returncode == 0, found.stderr
    (out,) = (tmp_path / "root" / "runs").iterdir()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["models"]["backbone"] == weights_fingerprint(SHIPPED / "mnist5k")


def test_a_remembered_backbone_fingerprint_follows_its_files(tmp_path):
    from distillbench.diffusion.backbone import weights_fingerprint
    folder = tmp_path / "pipeline"
    (folder / "transformer").mkdir(parents=True)
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    (folder / "model_index.json").write_text("{}")
    weights.write_bytes(b"first")
    first = weights_fingerprint(folder)
    assert weights_fingerprint(folder) == first
    weights.write_bytes(b"second, longer")
    assert weights_fingerprint(folder) != first
    weights.write_bytes(b"first")
    os.utime(weights, ns=(1, 1))  # the same bytes under another time: hashed again, the same digest
    assert weights_fingerprint(folder) == first


def test_a_failed_download_is_one_line_naming_what_to_do(monkeypatch):
    from distillbench import published
    from distillbench.testing import invoke

    def offline(name):
        raise ConnectionError("Got: ConnectError\nAn error happened while trying to locate the files on the Hub")
    monkeypatch.setattr(published, "_fetch", offline)
    result = invoke("download", "facebook/DiT-XL-2-256")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: cannot download 'facebook/DiT-XL-2-256' (ConnectionError: Got: "
                                    "ConnectError); check the network connection")
