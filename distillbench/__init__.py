"""distillbench: a dataset-distillation benchmark toolkit.

Importing this package is cheap (no torch); heavy libraries are imported inside
the functions that need them so that `distillbench --help` stays fast.  The Python API
(:mod:`distillbench.python_api`) is here by name: ``distillbench.run``, ``evaluate``,
``results``, ``compare``, ``load_set``.
"""
import importlib

from distillbench.hookspecs import hookimpl

__version__ = "0.1.0"
PYTHON_API = ("run", "evaluate", "results", "compare", "load_set")
__all__ = ["hookimpl", "__version__", *PYTHON_API]


def __getattr__(name: str):
    if name not in PYTHON_API:
        raise AttributeError(f"module 'distillbench' has no attribute '{name}'")
    return getattr(importlib.import_module("distillbench.python_api"), name)
