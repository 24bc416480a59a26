"""Fixtures of the whole suite (core tests under tests/, each plugin's under plugins/*/tests/); the helpers
and the contract suites they use live in :mod:`distillbench.testing`."""
from pathlib import Path

import pytest

from distillbench.testing import TINY_BACKBONE, TINY_TEACHER, invoke


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture(scope="session")
def model_cache(distillbench_cache) -> Path:
    """The session's cache with what the methods and the evaluator need for digits, trained once in seconds:
    a conv3 teacher and (when the d3hr plugin is installed) a tiny D3HR backbone."""
    from distillbench.plugins import registry
    for command in [TINY_TEACHER] + ([TINY_BACKBONE] if "d3hr" in registry("method").names() else []):
        result = invoke(*command, env={"DISTILLBENCH_CACHE": str(distillbench_cache)})
        assert result.exit_code == 0, result.output
    return distillbench_cache
