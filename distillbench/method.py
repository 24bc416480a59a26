"""The Distiller interface and the per-unit runner that every method shares.

A method splits its work into units (by default one per class; SRe2L, whose
batches mix classes, uses one per IPC index).  The runner skips units that a
previous, interrupted run finished, seeds each unit from (seed, unit id),
writes each unit's images as it completes, and turns the folder into a
finished set only at the end, by writing ``manifest.json`` last and renaming
the folder into place.  Under torchrun each rank takes every world_size-th unit
and rank 0 finishes the set once all are done; since seeds depend on the unit,
not the rank, the result is the same as one process's.  Resume, sharding,
seeding, progress and atomic output therefore work the same for built-in and
third-party methods.
"""
import dataclasses
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from distillbench import atomic, distributed, options as options_mod
from distillbench.distilled import MANIFEST, DistilledSet, class_folder, png_bytes
from distillbench.errors import ContractError

UNITS_DIR = ".units"


def derive_seed(seed: int, key: str) -> int:
    """A 63-bit seed for ``key`` that does not depend on the order units run in."""
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class Unit:
    """One piece of work: the images with these (label, slot) pairs."""

    id: str
    labels: tuple
    slots: tuple


@dataclass
class RunContext:
    spec: object  # DatasetSpec
    train: object  # ImageSet of the training split
    ipc: int
    seed: int
    device: str
    scratch: Path  # this run's unfinished work
    shared: Path  # work that other runs on the same root may reuse (D3HR's statistics, which IPC does not change)

    def generator(self, unit: Unit, device: str = "cpu"):
        """A torch generator seeded from (seed, unit id)."""
        import torch
        return torch.Generator(device=device).manual_seed(derive_seed(self.seed, unit.id))

    def progress(self, iterable, desc: str, total=None):
        """A bar on rank 0 only: under torchrun the other ranks' bars would overwrite it."""
        from tqdm.auto import tqdm
        return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                    disable=not distributed.is_main())


class Distiller:
    """A dataset-distillation method.

    Subclasses set ``name`` and ``description``, declare ``Options`` as a
    dataclass with defaults, and implement :meth:`distill_unit`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""  # the paper (authors, title, venue) and its official code
    draws_real_images: ClassVar[bool] = True  # True: IPC cannot exceed the smallest class
    smoke_options: ClassVar[dict] = {}  # options that make a tiny run quick (the conformance tests use them)

    @dataclass
    class Options:
        pass

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()

    @classmethod
    def from_overrides(cls, overrides: dict) -> "Distiller":
        return cls(options_mod.build(cls.Options, overrides, owner=f"method '{cls.name}'"))

    def training_set(self, load):
        """The training split this run works from; ``load()`` reads the dataset's.  A method that
        can work without the images (e.g. from stored statistics) may return a stand-in."""
        return load()

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        """Checksums of the trained models the run would use (a diffusion backbone, teachers).  They join
        the run id, so that a run never resumes or reuses work made with other weights."""
        return {}

    def units(self, num_classes: int, ipc: int) -> list[Unit]:
        return [Unit(f"class-{c:05d}", (c,) * ipc, tuple(range(ipc))) for c in range(num_classes)]

    def setup(self, ctx: RunContext) -> None:
        """Load what every unit needs (models, statistics); called once, only if work remains."""

    def distill_unit(self, unit: Unit, ctx: RunContext):
        """uint8 images ``[len(unit.labels), C, H, W]`` at the dataset's size, in the unit's order."""
        raise NotImplementedError

    def notes(self, ipc: int) -> dict:
        """Facts about this run worth keeping in the manifest (deviations, dropped terms)."""
        return {}

    def finalize(self, ctx: RunContext, folder: Path) -> dict:
        """After the last unit, before the manifest: write extra files into the set's folder
        (beside the class folders) and return facts for the manifest's notes."""
        return {}

    def distill(self, ctx: RunContext, out_dir: Path, manifest_extra: dict) -> DistilledSet:
        return run_units(self, ctx, Path(out_dir), manifest_extra)


def _broken_contract(method: Distiller, rule: str) -> ContractError:
    from distillbench.plugins import registry
    methods = registry("method")
    plugin = f"plugin '{methods.origin(method.name)}'" if method.name in methods else "an unregistered plugin"
    return ContractError(f"{plugin} broke the method contract: method '{method.name}' {rule}; nothing of it was "
                         "recorded as finished (report it to the plugin's author)")


def _check_units(method: Distiller, units: list[Unit], num_classes: int, ipc: int) -> None:
    """Together the units must name every (label, slot) of the set once: labels in range, slots 0..IPC-1."""
    pairs = [(label, slot) for unit in units for label, slot in zip(unit.labels, unit.slots)]
    for unit in units:
        if len(unit.labels) != len(unit.slots):
            raise _broken_contract(method, f"gave unit {unit.id} {len(unit.labels)} labels but {len(unit.slots)} slots")
        wrong = [label for label in unit.labels if not 0 <= label < num_classes]
        if wrong:
            raise _broken_contract(method, f"gave unit {unit.id} label {wrong[0]}, out of range for {num_classes} "
                                           f"classes (0..{num_classes - 1})")
    if sorted(pairs) != [(label, slot) for label in range(num_classes) for slot in range(ipc)]:
        raise _broken_contract(method, f"gave units whose (label, slot) pairs are not each class's slots 0..{ipc - 1} "
                                       "exactly once")


def _check_images(method: Distiller, unit: Unit, images, spec) -> None:
    import torch
    expected = (len(unit.labels), spec.channels, spec.image_size, spec.image_size)
    if not isinstance(images, torch.Tensor):
        raise _broken_contract(method, f"returned a {type(images).__name__} for unit {unit.id}, not a torch tensor")
    if images.dtype != torch.uint8 or tuple(images.shape) != expected:
        raise _broken_contract(method, f"returned {images.dtype} images of shape {tuple(images.shape)} for unit "
                                       f"{unit.id}; expected uint8 {expected}: the unit's {expected[0]} images at "
                                       "the dataset's size")


def run_units(method: Distiller, ctx: RunContext, out: Path, manifest_extra: dict) -> DistilledSet:
    """Distil every unit not finished before, this rank's share of them under torchrun, then (rank 0,
    once all ranks are done) write the manifest, move the set into place and delete the run's scratch."""
    with distributed.exclusive(ctx.scratch / "lock"):
        if not (out / MANIFEST).is_file():
            partial = out.with_name(out.name + ".partial")
            units = method.units(ctx.train.num_classes, ctx.ipc)
            _check_units(method, units, ctx.train.num_classes, ctx.ipc)
            _distil_units(method, ctx, partial, units)
            distributed.barrier()
            if distributed.is_main():
                _finish(method, ctx, partial, out, units, manifest_extra)
    if distributed.is_main():
        shutil.rmtree(ctx.scratch, ignore_errors=True)  # a process still waiting on its lock finds the set
    return DistilledSet.open(out)


def _distil_units(method: Distiller, ctx: RunContext, partial: Path, units: list[Unit]) -> None:
    folders = _class_folders(ctx)
    markers = partial / UNITS_DIR
    mine = distributed.shard(units)
    todo = [u for u in mine if not (markers / f"{u.id}.json").is_file()]
    if todo:
        method.setup(ctx)
    for unit in ctx.progress(todo, desc=f"{method.name} ({len(mine) - len(todo)}/{len(mine)} done before)"):
        start = time.perf_counter()
        images = method.distill_unit(unit, ctx)
        _check_images(method, unit, images, ctx.spec)
        images = images.cpu()
        for image, label, slot in zip(images, unit.labels, unit.slots):
            atomic.write_bytes(partial / folders[label] / f"{slot:05d}.png", png_bytes(image))
        atomic.write_json(markers / f"{unit.id}.json", {"seconds": time.perf_counter() - start})


def _finish(method: Distiller, ctx: RunContext, partial: Path, out: Path, units: list[Unit],
            manifest_extra: dict) -> None:
    markers = partial / UNITS_DIR
    seconds = {u.id: _read_seconds(markers / f"{u.id}.json") for u in units}
    manifest = {
        **manifest_extra,
        "class_folders": _class_folders(ctx),
        "class_names": ctx.train.class_names,
        "image_size": ctx.spec.image_size,
        "notes": {**method.notes(ctx.ipc), **method.finalize(ctx, partial)},
        "timings": {"unit_seconds": seconds, "total_seconds": sum(seconds.values())},
    }
    manifest["images_checksum"] = DistilledSet(partial, manifest).checksum()
    shutil.rmtree(markers)  # the finished set is a plain ImageFolder
    atomic.write_json(partial / MANIFEST, manifest)
    os.replace(partial, out)


def _class_folders(ctx: RunContext) -> list[str]:
    return [class_folder(i, n, ctx.train.num_classes) for i, n in enumerate(ctx.train.class_names)]


def _read_seconds(marker: Path) -> float:
    import json
    return json.loads(marker.read_text())["seconds"]


def options_dict(method: Distiller) -> dict:
    return dataclasses.asdict(method.options)
