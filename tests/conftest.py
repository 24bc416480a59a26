import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from distillbench.cli import cli
from distillbench.plugins import get_plugins

_commands_registered = False


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
    proc = subprocess.run([sys.executable, "-m", "distillbench", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"
