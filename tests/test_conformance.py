"""Every registered method, built-in or plugin, honours the Distiller contract.

Methods run on digits at IPC 2 with their ``smoke_options``.  Methods that need a model find it in
conftest's ``model_cache``: a tiny D3HR backbone and a conv3 teacher, both trained on digits in seconds.
"""
import dataclasses
import json
import shutil

import pytest
import torch

from conftest import invoke, torchrun
from distillbench.plugins import registry
from distillbench.store import Store
from test_runner import png_bytes_of

METHODS = registry("method").names()


def run_args(method, root, *extra, ipc=2, seed=0):
    options = [a for k, v in registry("method").get(method).smoke_options.items() for a in ("--option", f"{k}={v}")]
    return ["run", "--method", method, "--dataset", "digits", "--ipc", ipc, "--seed", seed, *options, *extra,
            "--root", root]


def run(method, root, model_cache, *extra, **kwargs):
    return invoke(*run_args(method, root, *extra, **kwargs), env={"DISTILLBENCH_CACHE": str(model_cache)})


def nudge_weights(path):
    """Change one tensor of a checkpoint, as retraining would, keeping the file loadable."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file, save_file
        tensors = load_file(path)
        name = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[name] += 1e-3
        save_file(tensors, path, metadata={"format": "pt"})
        return
    checkpoint = torch.load(path, weights_only=True)
    name = next(k for k, v in checkpoint["model"].items() if v.is_floating_point())
    checkpoint["model"][name] += 1e-3
    torch.save(checkpoint, path)


def finished(root):
    return sorted(p for p in (root / "runs").iterdir() if (p / "manifest.json").is_file())


@pytest.mark.parametrize("method", METHODS)
class TestMethodContract:
    def test_layout_ipc_and_manifest(self, method, model_cache, tmp_path):
        result = run(method, tmp_path, model_cache)
        assert result.exit_code == 0, result.output
        (out,) = finished(tmp_path)
        folders = sorted(p.name for p in out.iterdir() if p.is_dir())
        assert folders == [f"{c:03d}_{c}" for c in range(10)]
        assert all(len(list((out / f).glob("*.png"))) == 2 for f in folders)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["method"] == method and manifest["ipc"] == 2 and manifest["dataset"] == "digits"
        assert manifest["plugin"]["version"] and manifest["versions"]["torch"]
        assert manifest["inputs"]["train_fingerprint"] and manifest["images_checksum"].startswith("sha256:")
        fields = {f.name for f in dataclasses.fields(registry("method").get(method).Options)}
        assert set(manifest["options"]) == fields  # the fully resolved options, defaults included

    def test_retrained_models_mean_a_new_run(self, method, model_cache, tmp_path):
        assert run(method, tmp_path, model_cache).exit_code == 0
        (before,) = finished(tmp_path)
        cache = tmp_path / "cache"
        shutil.copytree(model_cache, cache)
        for weights in [*cache.rglob("*.pt"), *cache.rglob("*.safetensors")]:
            if "datasets" not in weights.relative_to(cache).parts:  # the parsed embedded datasets are no model
                nudge_weights(weights)
        assert run(method, tmp_path, cache).exit_code == 0
        runs = finished(tmp_path)
        models = json.loads((before / "manifest.json").read_text())["inputs"]["models"]
        assert len(runs) == (2 if models else 1)
        if models:
            (after,) = set(runs) - {before}
            assert json.loads((after / "manifest.json").read_text())["inputs"]["models"].keys() == models.keys()

    def test_deterministic_on_cpu(self, method, model_cache, tmp_path):
        for name in ("a", "b"):
            assert run(method, tmp_path / name, model_cache, "--device", "cpu").exit_code == 0
        assert png_bytes_of(finished(tmp_path / "a")[0]) == png_bytes_of(finished(tmp_path / "b")[0])

    def test_seed_changes_the_result(self, method, model_cache, tmp_path):
        for seed in (0, 1):
            assert run(method, tmp_path / str(seed), model_cache, seed=seed).exit_code == 0
        assert png_bytes_of(finished(tmp_path / "0")[0]) != png_bytes_of(finished(tmp_path / "1")[0])

    def test_unknown_option_is_rejected(self, method, model_cache, tmp_path):
        result = run(method, tmp_path, model_cache, "--option", "no_such_option=1")
        assert result.exit_code == 2
        assert f"unknown option 'no_such_option' for method '{method}'" in result.stderr
        assert not (tmp_path / "runs").exists() or not finished(tmp_path)

    def test_torchrun_shards_to_the_same_result(self, method, model_cache, tmp_path):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # torchrun's threads per rank (OMP_NUM_THREADS=1): CPU sums depend on them
        try:
            assert run(method, tmp_path / "one", model_cache).exit_code == 0
        finally:
            torch.set_num_threads(threads)
        two = torchrun(*run_args(method, tmp_path / "two"), env={"DISTILLBENCH_CACHE": str(model_cache)})
        assert two.returncode == 0, two.stderr
        (single,), (sharded,) = finished(tmp_path / "one"), finished(tmp_path / "two")
        assert png_bytes_of(sharded) == png_bytes_of(single)
        assert sorted(p.name for p in sharded.iterdir()) == sorted(p.name for p in single.iterdir())
        manifest = json.loads((sharded / "manifest.json").read_text())
        assert manifest["world_size"] == 2 and len(manifest["timings"]["unit_seconds"]) == len(
            json.loads((single / "manifest.json").read_text())["timings"]["unit_seconds"])
        assert Store(tmp_path / "two").run_ids() == [sharded.name]  # recorded once, by rank 0
        assert two.stdout.count("distilled set:") == 1

