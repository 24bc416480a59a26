"""Plugins through real entry points: a third-party package, broken ones, strict mode, disabling."""
import json

import pytest

from distillbench.testing import install_plugin, run_subprocess

GOOD = '''
import dataclasses
from distillbench.api import Distiller, hookimpl, option


class Constant(Distiller):
    """Every image filled with one grey level: a toy third-party method."""
    name = "constant"
    description = "third-party test method: images of one grey level"
    citation = "Nobody, A Constant Method, 2026"

    @dataclasses.dataclass
    class Options:
        level: int = option(128, "grey level of every pixel")

    def distill_unit(self, unit, ctx):
        import torch
        size = ctx.spec.image_size
        return torch.full((len(unit.labels), 3, size, size), self.options.level, dtype=torch.uint8)


@hookimpl
def register_methods(register):
    register(Constant)
'''

FLOAT_IMAGES = GOOD.replace("dtype=torch.uint8", "dtype=torch.float32")

BROKEN_IMPORT = "import module_that_does_not_exist\n"
BAD_SIGNATURE = '''
from distillbench import hookimpl

@hookimpl
def register_methods(register, unexpected_argument):
    pass
'''
DUPLICATE = '''
from distillbench import hookimpl
from distillbench.builtin.random_method import RandomSubset

class Impostor(RandomSubset):
    description = "claims the built-in name"

@hookimpl
def register_methods(register):
    register(Impostor)
'''


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def env_with(site, **extra):
    return {"PYTHONPATH": str(site), "DISTILLBENCH_STRICT_PLUGINS": "0", **extra}


def test_third_party_method_is_listed_and_runs(site, tmp_path):
    install_plugin(site, "db-constant", "db_constant_plugin", GOOD)
    listed = run_subprocess("methods", env=env_with(site), check=True)
    assert "constant" in listed.stdout and "db-constant" in listed.stdout
    shown = run_subprocess("methods", "constant", env=env_with(site), check=True).stdout.splitlines()
    assert shown[:3] == ["constant: third-party test method: images of one grey level", "plugin: db-constant 0.3.1",
                         "citation: Nobody, A Constant Method, 2026"]
    assert shown[4].split() == ["level", "int", "128", "grey", "level", "of", "every", "pixel"]
    root = tmp_path / "root"
    run_subprocess("run", "--method", "constant", "--dataset", "digits", "--ipc", "2", "--option", "level=7",
                   "--root", root, env=env_with(site), check=True)
    (run_dir,) = (root / "runs").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["plugin"] == {"name": "db-constant", "version": "0.3.1"}
    assert manifest["options"] == {"level": 7}
    assert len(list(run_dir.glob("*/*.png"))) == 20


def test_a_method_breaking_the_contract_is_one_line_naming_plugin_method_unit_and_rule(site, tmp_path):
    install_plugin(site, "db-floats", "db_floats_plugin", FLOAT_IMAGES)
    root = tmp_path / "root"
    proc = run_subprocess("run", "--method", "constant", "--dataset", "digits", "--ipc", "2", "--root", root,
                          env=env_with(site))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "Error: plugin 'db-floats' broke the method contract: method 'constant' returned torch.float32 images of "
        "shape (2, 3, 32, 32) for unit class-00000; expected uint8 (2, 3, 32, 32): the unit's 2 images at the "
        "dataset's size; nothing of it was recorded as finished (report it to the plugin's author)")
    assert not list(root.rglob("*.png")) and not list(root.rglob("*.json"))  # no image, unit marker or manifest
    assert not (root / "results.sqlite").exists()


@pytest.mark.parametrize("source,expected", [
    (BROKEN_IMPORT, "ModuleNotFoundError"),
    (BAD_SIGNATURE, "unexpected_argument"),
    (DUPLICATE, "method 'random' is already registered by plugin"),
])
def test_broken_plugin_is_reported_not_fatal(site, source, expected):
    install_plugin(site, "db-broken", "db_broken_plugin", source)
    proc = run_subprocess("plugins", "--json", env=env_with(site))
    assert proc.returncode == 0, proc.stderr
    info = {p["name"]: p for p in json.loads(proc.stdout)}
    assert any(expected in e for e in info["db-broken"]["errors"])
    assert "warning: plugin 'db-broken' failed" in proc.stderr
    methods = run_subprocess("methods", env=env_with(site))
    assert methods.returncode == 0 and "random" in methods.stdout
    assert "claims the built-in name" not in methods.stdout  # never silently shadowed


def test_strict_mode_turns_plugin_errors_into_failure(site):
    install_plugin(site, "db-broken", "db_broken_plugin", BROKEN_IMPORT)
    proc = run_subprocess("methods", env=env_with(site, DISTILLBENCH_STRICT_PLUGINS="1"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Error: plugin 'db-broken' failed: ModuleNotFoundError: No module named 'module_that_does_not_exist' "
        "(DISTILLBENCH_STRICT_PLUGINS is set)"]


def test_disabled_plugin_is_not_loaded(site):
    install_plugin(site, "db-broken", "db_broken_plugin", BROKEN_IMPORT)
    proc = run_subprocess("plugins", "--json", env=env_with(site, DISTILLBENCH_DISABLE_PLUGINS="db-broken"))
    info = {p["name"]: p for p in json.loads(proc.stdout)}
    assert info["db-broken"]["disabled"] and not info["db-broken"]["errors"]
    assert proc.stderr == ""


def test_help_does_not_import_torch():
    import subprocess
    import sys
    code = ("import sys; from distillbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported at start-up'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
