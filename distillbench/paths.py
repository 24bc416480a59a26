"""Where things live: the results root, the model cache and the data folder."""
import os
from pathlib import Path


def root_dir(root=None) -> Path:
    return Path(root or os.environ.get("DISTILLBENCH_ROOT") or "distillbench-runs")


def cache_dir() -> Path:
    return Path(os.environ.get("DISTILLBENCH_CACHE") or Path.home() / ".cache" / "distillbench")


def data_dir(value=None):
    value = value or os.environ.get("DISTILLBENCH_DATA")
    return Path(value) if value else None
