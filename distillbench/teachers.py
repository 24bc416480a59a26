"""Teachers, a service of every plugin that needs one (the evaluator's soft labels, SRe2L's recovery, RDED's
crop scores): find the cached one, load user-supplied checkpoints, average several, normalise their inputs.

A checkpoint is either ours (``{"model": state_dict, "arch": ..., "dataset":
..., ...}``, written by ``distillbench train-teacher``) or a bare state_dict /
``{"model": ...}`` (RDED) / ``{"state_dict": ...}`` (SRe2L) given as
``ARCH=PATH``; a ``module.`` prefix (DataParallel) is stripped.
"""
from pathlib import Path

import torch

from distillbench import atomic, published
from distillbench.checksum import sha256_file
from distillbench.errors import UsageError
from distillbench.paths import file_name
from distillbench.plugins import registry


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORMALIZATIONS = ("dataset", "imagenet")


class Normalizer:
    """(x - mean) / std per channel, for images in [0, 1]."""

    def __init__(self, mean, std, device):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, x_unit):
        return (x_unit - self.mean) / self.std


def normalizer(spec, normalization, device) -> Normalizer:
    """The input normalisation ``normalization``: "dataset" (the dataset's own statistics), "imagenet", or
    ``{"mean": [...], "std": [...]}`` (what a published model records, e.g. timm's)."""
    if isinstance(normalization, dict):
        return Normalizer(normalization["mean"], normalization["std"], device)
    if normalization == "imagenet":
        return Normalizer(IMAGENET_MEAN, IMAGENET_STD, device)
    return Normalizer(spec.mean, spec.std, device)


def cached_teacher_path(cache_dir: Path, dataset: str, arch: str, seed: int = 0) -> Path:
    """Where ``train-teacher`` keeps the teacher of (dataset, arch); seed K > 0 of ``--seeds`` beside it."""
    return Path(cache_dir) / "teachers" / f"{file_name(dataset)}-{arch}{f'-seed{seed}' if seed else ''}.pt"


def save_teacher(path: Path, model, meta: dict) -> str:
    atomic.write_torch(path, {"model": model.state_dict(), **meta})
    checksum = sha256_file(path)
    atomic.write_json(path.with_suffix(".json"), {**meta, "sha256": checksum})
    return checksum


def _read_checkpoint(path: Path):
    if not path.is_file():
        raise UsageError(f"teacher checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(f"cannot read teacher checkpoint {path} ({type(exc).__name__}: {exc}); "
                         "is the file complete?") from None


def load_teacher(path: Path, arch_hint, spec, num_classes: int):
    """(model in eval mode, description dict) from a checkpoint file."""
    checkpoint = _read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise UsageError(f"teacher checkpoint {path} is not a state_dict or a dict holding one")
    state = checkpoint.get("model", checkpoint.get("state_dict", checkpoint))
    arch = checkpoint.get("arch") if isinstance(checkpoint.get("arch"), str) else arch_hint
    if arch is None:
        raise UsageError(f"teacher checkpoint {path} does not say its architecture; pass --teacher ARCH={path}")
    if checkpoint.get("num_classes", num_classes) != num_classes:
        raise UsageError(f"teacher {path} has {checkpoint['num_classes']} classes but dataset "
                         f"'{spec.name}' has {num_classes}")
    model_spec = registry("model").get(arch)
    model = model_spec.build(num_classes, spec.image_size)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if model_spec.adapt_state_dict is not None:
        state = model_spec.adapt_state_dict(state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"teacher {path} does not fit {arch} for '{spec.name}' ({num_classes} classes, "
                         f"{spec.image_size}px): {first}") from None
    return model.eval().requires_grad_(False), {"arch": arch, "path": str(path), "sha256": sha256_file(path),
                                                "accuracy": checkpoint.get("accuracy"),
                                                "normalization": checkpoint.get("normalization")}


def resolve_teachers(teacher_args, default_arch: str, spec, num_classes: int, cache_dir: Path):
    """Teachers from ``--teacher`` arguments (``[ARCH=]PATH``, or published weights ``torchvision:NAME``,
    ``timm:NAME``; see :mod:`distillbench.published`), or the cached ones for (dataset, arch) of each arch in
    ``default_arch`` (comma-separated)."""
    if not teacher_args:
        return [cached_teacher(cache_dir, spec, arch, num_classes) for arch in default_arch.split(",")]
    loaded = []
    for arg in teacher_args:
        if published.is_published(arg):
            loaded.append(published.load_model(arg, num_classes))
            continue
        arch, sep, path = arg.partition("=")
        loaded.append(load_teacher(Path(path if sep else arg), arch if sep else None, spec, num_classes))
    return loaded


def cached_teacher(cache_dir: Path, spec, name: str, num_classes: int):
    """The cached teacher ``ARCH`` or ``ARCH@K`` (the one ``train-teacher --seeds`` trained with seed K)."""
    arch, _, seed = name.partition("@")
    if seed and not seed.isdigit():
        raise UsageError(f"teacher '{name}': the part after @ must be a seed number, e.g. {arch}@1")
    path = cached_teacher_path(cache_dir, spec.name, arch, int(seed or 0))
    if not path.is_file():
        seeds = f" --seeds 0-{seed}" if seed else ""
        raise UsageError(f"no {name} teacher for '{spec.name}' in {path.parent}; make one with "
                         f"`distillbench train-teacher --dataset {spec.name} --arch {arch}{seeds}` "
                         "or pass --teacher ARCH=PATH")
    return load_teacher(path, arch, spec, num_classes)


def load_ensemble(teacher_args, default_arch: str, spec, num_classes: int, cache_dir: Path, device: str,
                  normalization: str):
    """(one frozen model averaging every teacher's logits, on ``device``, channels_last; their descriptions).

    ``normalization`` is what the caller feeds the ensemble.  A teacher whose checkpoint records another one
    (``train-teacher`` records it) sees its inputs converted to its own; one that records none is assumed to
    expect what it is fed.  Each description says both."""
    models, infos = [], []
    for model, info in resolve_teachers(teacher_args, default_arch, spec, num_classes, cache_dir):
        own = info["normalization"]
        if isinstance(own, str) and own not in NORMALIZATIONS:
            raise UsageError(f"teacher {info['path']} records input normalisation '{own}', which distillbench does "
                             f"not know; expected one of: {', '.join(NORMALIZATIONS)}, or mean and std")
        if own is not None and own != normalization:
            model = Renormalized(model, normalizer(spec, normalization, "cpu"), normalizer(spec, own, "cpu"))
        models.append(model)
        infos.append({**info, "fed": normalization, "normalization": own or f"assumed {normalization}"})
    return Ensemble(models).to(device, memory_format=torch.channels_last), infos


class Renormalized(torch.nn.Module):
    """A teacher fed inputs normalised one way that expects another: x * (std_fed / std_own) +
    (mean_fed - mean_own) / std_own, per channel, before the teacher."""

    def __init__(self, model, fed: Normalizer, own: Normalizer):
        super().__init__()
        self.model = model
        self.register_buffer("scale", fed.std / own.std)
        self.register_buffer("shift", (fed.mean - own.mean) / own.std)

    def forward(self, x):
        return self.model(x * self.scale + self.shift)


class Ensemble(torch.nn.Module):
    """Several teachers as one: their logits averaged (as D3HR's five-teacher evaluation does)."""

    def __init__(self, models):
        super().__init__()
        self.models = torch.nn.ModuleList(models)

    def forward(self, x):
        return torch.stack([m(x) for m in self.models]).mean(0)
