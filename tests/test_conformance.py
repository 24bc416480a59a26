"""Every registered method, built-in or plugin, honours the Distiller contract.

Methods run on digits at IPC 2 with their ``smoke_options``.  Methods that need a model find it in a
cache prepared here: a tiny D3HR backbone and a conv3 teacher, both trained on digits in seconds.
"""
import dataclasses
import json

import pytest

from conftest import invoke
from distillbench.plugins import registry
from test_runner import png_bytes_of

METHODS = registry("method").names()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    env = {"DISTILLBENCH_CACHE": str(cache)}
    commands = [["train-teacher", "--dataset", "digits", "--arch", "conv3", "--epochs", "1"]]
    if "d3hr" in METHODS:
        commands.append(["d3hr", "train-backbone", "--dataset", "digits", "--set", "vae_epochs=1",
                         "--set", "dit_steps=10", "--set", "dit_layers=1", "--set", "vae_channels=16,32,32"])
    for command in commands:
        result = invoke(*command, env=env)
        assert result.exit_code == 0, result.output
    return cache


def run(method, root, cache, *extra, ipc=2, seed=0):
    options = [a for k, v in registry("method").get(method).smoke_options.items() for a in ("--option", f"{k}={v}")]
    return invoke("run", "--method", method, "--dataset", "digits", "--ipc", ipc, "--seed", seed, *options, *extra,
                  "--root", root, env={"DISTILLBENCH_CACHE": str(cache)})


def finished(root):
    return sorted(p for p in (root / "runs").iterdir() if (p / "manifest.json").is_file())


@pytest.mark.parametrize("method", METHODS)
class TestMethodContract:
    def test_layout_ipc_and_manifest(self, method, cache, tmp_path):
        result = run(method, tmp_path, cache)
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

    def test_deterministic_on_cpu(self, method, cache, tmp_path):
        for name in ("a", "b"):
            assert run(method, tmp_path / name, cache, "--device", "cpu").exit_code == 0
        assert png_bytes_of(finished(tmp_path / "a")[0]) == png_bytes_of(finished(tmp_path / "b")[0])

    def test_seed_changes_the_result(self, method, cache, tmp_path):
        for seed in (0, 1):
            assert run(method, tmp_path / str(seed), cache, seed=seed).exit_code == 0
        assert png_bytes_of(finished(tmp_path / "0")[0]) != png_bytes_of(finished(tmp_path / "1")[0])

    def test_unknown_option_is_rejected(self, method, cache, tmp_path):
        result = run(method, tmp_path, cache, "--option", "no_such_option=1")
        assert result.exit_code == 2
        assert f"unknown option 'no_such_option' for method '{method}'" in result.stderr
        assert not (tmp_path / "runs").exists() or not finished(tmp_path)
