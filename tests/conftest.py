import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from distillbench.cli import cli
from distillbench.plugins import get_plugins

_commands_registered = False
# A test process or wait that takes this long hangs: the slowest measured took about a minute on a loaded 2-core
# machine, and no test asserts on time.  Timeouts only stop hung tests, and say so.
HANG_SECONDS = 900


def hang(what: str) -> AssertionError:
    return AssertionError(f"{what} did not finish within {HANG_SECONDS} s: it hangs")


def communicate(proc: subprocess.Popen, what: str):
    """``proc.communicate()``, killing a hung process."""
    try:
        return proc.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise hang(what) from None


def invoke(*args, env=None):
    """Run the CLI in-process (plugins' commands included)."""
    global _commands_registered
    if not _commands_registered:
        get_plugins().register_commands(cli)
        _commands_registered = True
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


def run_subprocess(*args, env=None, cwd=None, check=False):
    """Run ``python -m distillbench`` as a user would, with a real plugin discovery."""
    full_env = {**os.environ, **(env or {})}
    proc = run_command([sys.executable, "-m", "distillbench", *map(str, args)], env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def torchrun(*args, env=None, nproc=2):
    """``torchrun --standalone --nproc_per_node N -m distillbench ...`` on CPU (gloo)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return run_command([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                 "-m", "distillbench", *map(str, args)], env=full_env)


def run_command(command: list, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=HANG_SECONDS, **kwargs)
    except subprocess.TimeoutExpired:
        raise hang(" ".join(map(str, command))) from None


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """A cache with what the methods and the evaluator need for digits, trained once in seconds:
    a conv3 teacher and (when the d3hr plugin is installed) a tiny D3HR backbone."""
    from distillbench.plugins import registry
    cache = tmp_path_factory.mktemp("cache")
    commands = [["train-teacher", "--dataset", "digits", "--arch", "conv3", "--epochs", "3"]]
    if "d3hr" in registry("method").names():
        commands.append(["d3hr", "train-backbone", "--dataset", "digits", "--set", "vae_epochs=1",
                         "--set", "dit_steps=10", "--set", "dit_layers=1", "--set", "vae_channels=16,32,32"])
    for command in commands:
        result = invoke(*command, env={"DISTILLBENCH_CACHE": str(cache)})
        assert result.exit_code == 0, result.output
    return cache
