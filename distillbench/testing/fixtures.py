"""distillbench's pytest fixtures, loaded in every pytest session of an environment where distillbench is
installed (a ``pytest11`` entry point), so that the contract suites work in a plugin author's tests."""
import pytest


@pytest.fixture(scope="session")
def distillbench_cache(tmp_path_factory):
    """A model cache (``DISTILLBENCH_CACHE``) shared by the test session: what one test trains into it (a
    teacher, a backbone) the next finds."""
    return tmp_path_factory.mktemp("distillbench-cache")
