"""Where things live: the results root, the model cache and the data folder."""
import hashlib
import os
import re
from pathlib import Path


def root_dir(root=None) -> Path:
    return Path(root or os.environ.get("DISTILLBENCH_ROOT") or "distillbench-runs")


def cache_dir() -> Path:
    return Path(os.environ.get("DISTILLBENCH_CACHE") or Path.home() / ".cache" / "distillbench")


def data_dir(value=None):
    value = value or os.environ.get("DISTILLBENCH_DATA")
    return Path(value) if value else None


def file_name(name: str) -> str:
    """``name`` as one safe path component: itself where it is one (``cifar10``), else its safe characters and a
    short hash of the whole (``hf:user/set?size=64`` -> ``hf_user_set_size_64-1a2b3c4d``)."""
    if re.fullmatch(r"[A-Za-z0-9._-]+", name):
        return name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
