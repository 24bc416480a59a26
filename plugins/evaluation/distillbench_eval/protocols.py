"""Named, versioned evaluation protocols.

A protocol is a name, a version and a :class:`Settings`; ``--set key=value``
overrides a setting (unknown keys are rejected) and the fully resolved
protocol is stored with every result.  A protocol can also be a JSON file
``{"name": ..., "version": ..., "settings": {...}}``.

``rded`` is the soft-label protocol of RDED (Sun et al., CVPR 2024;
LINs-lab/RDED ``validation/main.py``, ``argument.py``) that D3HR's evaluation
reuses (lin-zhao-resoLve/D3HR ``validation/validate.py``): RandomResizedCrop
+ flip, CutMix with Beta(1,1), the teacher relabels the mixed batch online,
KL(student/T || teacher/T) with T = 20 and batchmean reduction (no T^2), AdamW
(0.9, 0.999), weight decay 0.01 on weights with ndim > 1 only, the per-student
RDED learning rate and the half-cosine schedule 0.5(1 + cos(pi e / 2E)).
"""
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, Optional

from distillbench.api import UsageError, build_options, choices_hint


@dataclass(frozen=True)
class Settings:
    labels: Literal["online", "stored", "hard"] = "online"
    epochs: int = 300
    temperature: float = 20.0
    mix: Literal["cutmix", "mixup", "none"] = "cutmix"
    mix_alpha: float = 1.0
    augment: Literal["resized_crop", "shift"] = "resized_crop"
    crop_scale_min: float = 0.08  # resized_crop: smallest area fraction
    shift: int = 4  # shift: RandomCrop padding in pixels
    flip: bool = True
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: Optional[float] = None  # None: the student's RDED learning rate
    weight_decay: float = 0.01
    beta1: float = 0.9  # AdamW beta1, or SGD momentum
    beta2: float = 0.999
    schedule: Literal["half_cosine", "cosine", "constant"] = "half_cosine"
    batch_size: Optional[int] = None  # None: RDED's rule by IPC and class count
    eval_every: int = 10
    eval_after: float = 0.8  # periodic evaluations only after this fraction of the epochs (RDED)
    normalization: Literal["dataset", "imagenet"] = "dataset"
    teacher_arch: Optional[str] = None  # None: same architecture as the student
    amp: bool = True  # bf16 autocast on CUDA and on CPUs with native bf16

    def __post_init__(self):
        ranges = [("epochs", self.epochs >= 1, ">= 1"), ("temperature", self.temperature > 0, "> 0"),
                  ("mix_alpha", self.mix_alpha > 0, "> 0"),
                  ("crop_scale_min", 0 < self.crop_scale_min <= 1, "in (0, 1]"),
                  ("shift", self.shift >= 0, ">= 0"), ("lr", self.lr is None or self.lr > 0, "> 0"),
                  ("weight_decay", self.weight_decay >= 0, ">= 0"), ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"),
                  ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
                  ("batch_size", self.batch_size is None or self.batch_size >= 1, ">= 1"),
                  ("eval_every", self.eval_every >= 1, ">= 1"), ("eval_after", 0 <= self.eval_after <= 1, "in [0, 1]")]
        for key, ok, allowed in ranges:
            if not ok:
                raise UsageError(f"protocol setting {key}={getattr(self, key)} is out of range: it must be {allowed}")


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    description: str
    settings: Settings

    def resolved(self) -> dict:
        return {"name": self.name, "version": self.version, "settings": asdict(self.settings)}


PROTOCOLS = {p.name: p for p in [
    Protocol("rded", 1, "RDED/SRe2L soft labels: online teacher on CutMix batches, KL at T=20, 300 epochs", Settings()),
    Protocol("d3hr-cifar", 1, "as rded, 1000 epochs and ImageNet normalisation, as the D3HR paper's CIFAR table",
             Settings(epochs=1000, normalization="imagenet")),
    Protocol("stored-labels", 1, "as rded, but the teacher's soft labels are computed once per image and stored "
             "with the set (FKD-style); mixed batches mix the stored labels", Settings(labels="stored")),
    Protocol("teacher", 1, "how `train-teacher` trains teachers: SRe2L's CIFAR squeeze recipe (SGD 0.1, momentum "
             "0.9, wd 5e-4, cosine, RandomCrop(pad 4) + flip, batch 128, 200 epochs) on hard labels",
             Settings(labels="hard", mix="none", augment="shift", optimizer="sgd", lr=0.1, weight_decay=5e-4,
                      schedule="cosine", epochs=200, batch_size=128, eval_every=10, eval_after=0.0)),
    Protocol("hard-label", 1, "no teacher: cross-entropy on the true labels with mixup (alpha 1), as D3HR's "
             "validate_hardlabel.py, but 300 epochs (that script trains imagewoof for 1000-2000)",
             Settings(labels="hard", mix="mixup", mix_alpha=1.0)),
]}


def resolve(name: str, overrides: dict) -> Protocol:
    """The named protocol (or JSON file) with ``--set`` overrides applied."""
    if name.endswith(".json"):
        protocol = load_file(Path(name))
    elif name in PROTOCOLS:
        protocol = PROTOCOLS[name]
    else:
        raise UsageError(f"unknown protocol '{name}'; choose one of: {choices_hint(PROTOCOLS)} (or a .json file)")
    if not overrides:
        return protocol
    changed = build_options(Settings, overrides, owner=f"protocol '{protocol.name}'")
    explicit = {k: getattr(changed, k) for k in overrides}
    return replace(protocol, settings=replace(protocol.settings, **explicit))


def for_dataset(protocol: Protocol, spec) -> Protocol:
    """The protocol as it runs on ``spec``: no horizontal flips where they change the class (digits)."""
    if protocol.settings.flip and not spec.mirror_invariant:
        return replace(protocol, settings=replace(protocol.settings, flip=False))
    return protocol


def load_file(path: Path) -> Protocol:
    try:
        data = json.loads(path.read_text())
        settings = {k: str(v) if v is not None else "none" for k, v in data.get("settings", {}).items()}
        return Protocol(str(data["name"]), int(data["version"]), str(data.get("description", "")),
                        build_options(Settings, settings, owner=f"protocol file {path}"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"cannot read protocol file {path}: {type(exc).__name__}: {exc}; expected JSON "
                         '{"name": ..., "version": 1, "settings": {...}}') from None


def batch_size(ipc: int, num_classes: int, set_size: int) -> int:
    """RDED's student batch size: IPC 1/10/50 -> 10/50/100, doubled for >= 100 classes, capped at the set size."""
    base = 100 if ipc >= 50 else 50 if ipc >= 10 else 10
    return min(base * (2 if num_classes >= 100 else 1), set_size)
