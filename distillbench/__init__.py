"""distillbench: a dataset-distillation benchmark toolkit.

Importing this package is cheap (no torch); heavy libraries are imported inside
the functions that need them so that `distillbench --help` stays fast.
"""
from distillbench.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
