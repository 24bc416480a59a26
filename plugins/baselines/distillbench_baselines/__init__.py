"""Baselines for distillbench: SRe2L, RDED and D4M adapters."""
__version__ = "0.1.0"
