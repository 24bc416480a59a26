"""The public plugin API: everything a plugin may import from distillbench, in one place.

Built-in plugins import only this module (and their own package), as a third-party plugin does::

    from distillbench.api import Distiller, hookimpl, option

Importing it stays cheap (no torch): the services that need torch (teachers, the diffusion backbone) are
imported on first use of their names.
"""
import importlib

from distillbench import atomic, distributed
from distillbench.accel import autocast, precision
from distillbench.checksum import json_digest, sha256_file
from distillbench.cli import data_options, device_option, distill_and_report, root_option, seed_option
from distillbench.datasets import DatasetSpec, DataSource, ImageSet
from distillbench.device import resolve_device
from distillbench.distilled import DistilledSet, png_bytes
from distillbench.errors import ContractError, DistillbenchError, UsageError, check_finite, choices_hint
from distillbench.evaluator import EvalRequest, Evaluator, Trial, TrialContext
from distillbench.grid import tile_grid
from distillbench.hookspecs import hookimpl
from distillbench.method import Distiller, RunContext, Unit, UnitResult
from distillbench.models import ModelSpec
from distillbench.options import build as build_options, int_list, option, parse_pairs
from distillbench.paper import PaperResult
from distillbench.paths import cache_dir, file_name
from distillbench.plugins import registry
from distillbench.distillation import RunConfig
from distillbench.seeds import derive_seed

_LAZY = {  # name -> module, imported on first use (they need torch)
    **dict.fromkeys(("draw_mix", "mix", "resized_crop_params", "shift_params", "shuffle_patches", "warp"),
                    "distillbench.augment"),
    **dict.fromkeys(("Ensemble", "Normalizer", "NORMALIZATIONS", "cached_teacher_path", "load_ensemble",
                     "load_teacher", "normalizer", "resolve_teachers", "save_teacher"), "distillbench.teachers"),
    **dict.fromkeys(("Backbone", "BACKBONE_FIX", "cached_backbone_dir", "find_backbone", "pipeline_folder",
                     "weights_fingerprint"), "distillbench.diffusion.backbone"),
    **dict.fromkeys(("BackboneConfig", "DenoisingStep", "Tuning", "train_backbone"), "distillbench.diffusion.training"),
    **dict.fromkeys(("evaluate", "load_set", "run"), "distillbench.python_api"),
    "welch_p": "distillbench.tables",
    **dict.fromkeys(("ancestral_sample", "ddim_grid", "ddim_move", "forward_noise", "guided", "invert", "respaced_grid",
                     "sample", "sample_floored"),
                    "distillbench.diffusion.ddim"),
}

__all__ = [
    "atomic", "distributed", "autocast", "precision", "json_digest", "sha256_file",
    "data_options", "device_option", "distill_and_report", "root_option", "seed_option",
    "DatasetSpec", "DataSource", "ImageSet", "resolve_device", "DistilledSet", "png_bytes",
    "ContractError", "DistillbenchError", "UsageError", "check_finite", "choices_hint",
    "EvalRequest", "Evaluator", "Trial", "TrialContext", "tile_grid", "hookimpl",
    "Distiller", "RunContext", "Unit", "UnitResult", "ModelSpec", "build_options", "int_list", "option",
    "parse_pairs",
    "PaperResult", "cache_dir", "file_name", "registry", "RunConfig", "derive_seed", *_LAZY,
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'distillbench.api' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
