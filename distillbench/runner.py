"""The per-unit runner: distills a method's units into a finished set, the same for every method.

The runner skips units that a previous, interrupted run finished, seeds each unit from (seed, unit id),
writes each unit's images as it completes, and turns the folder into a finished set only at the end, by
writing ``manifest.json`` last and renaming the folder into place.  Under torchrun each rank takes every
world_size-th unit and rank 0 finishes the set once all are done; since seeds depend on the unit, not the
rank, the result is the same as one process's.
"""
import json
import os
import shutil
import time
from pathlib import Path

from distillbench import atomic, distributed
from distillbench.distilled import MANIFEST, DistilledSet, class_folder, png_bytes
from distillbench.errors import ContractError
from distillbench.method import Distiller, RunContext, Unit, UnitResult

UNITS_DIR = ".units"


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
    """Distill every unit not finished before, this rank's share of them under torchrun, then (rank 0,
    once all ranks are done) write the manifest, move the set into place and delete the run's scratch."""
    with distributed.exclusive(ctx.scratch / "lock"):
        if not (out / MANIFEST).is_file():
            partial = out.with_name(out.name + ".partial")
            units = method.units(ctx.train.num_classes, ctx.ipc)
            _check_units(method, units, ctx.train.num_classes, ctx.ipc)
            method.setup(ctx)
            _distill_units(method, ctx, partial, units)
            distributed.barrier()
            if distributed.is_main():
                _finish(method, ctx, partial, out, units, manifest_extra)
    if distributed.is_main():
        shutil.rmtree(ctx.scratch, ignore_errors=True)  # a process still waiting on its lock finds the set
    return DistilledSet.open(out)


def _distill_units(method: Distiller, ctx: RunContext, partial: Path, units: list[Unit]) -> None:
    folders = _class_folders(ctx)
    markers = partial / UNITS_DIR
    mine = distributed.shard(units)
    todo = [u for u in mine if not (markers / f"{u.id}.json").is_file()]
    for unit in ctx.progress(todo, desc=f"{method.name} ({len(mine) - len(todo)}/{len(mine)} done before)"):
        start = time.perf_counter()
        result = method.distill_unit(unit, ctx)
        if not isinstance(result, UnitResult):
            result = UnitResult(result)
        _check_images(method, unit, result.images, ctx.spec)
        for image, label, slot in zip(result.images.cpu(), unit.labels, unit.slots):
            atomic.write_bytes(partial / folders[label] / f"{slot:05d}.png", png_bytes(image))
        atomic.write_json(markers / f"{unit.id}.json", {"seconds": time.perf_counter() - start, "notes": result.notes})


def _finish(method: Distiller, ctx: RunContext, partial: Path, out: Path, units: list[Unit],
            manifest_extra: dict) -> None:
    markers = {u.id: json.loads((partial / UNITS_DIR / f"{u.id}.json").read_text()) for u in units}
    seconds = {unit_id: marker["seconds"] for unit_id, marker in markers.items()}
    unit_notes = {unit_id: marker["notes"] for unit_id, marker in markers.items() if marker.get("notes")}
    manifest = {
        **manifest_extra,
        "class_folders": _class_folders(ctx),
        "class_names": ctx.train.class_names,
        "image_size": ctx.spec.image_size,
        "notes": {**method.notes(ctx.ipc), **method.finalize(ctx, partial, unit_notes)},
        "timings": {"unit_seconds": seconds, "total_seconds": sum(seconds.values())},
    }
    manifest["images_checksum"] = DistilledSet(partial, manifest).checksum()
    shutil.rmtree(partial / UNITS_DIR)  # the finished set is a plain ImageFolder
    atomic.write_json(partial / MANIFEST, manifest)
    os.replace(partial, out)


def _class_folders(ctx: RunContext) -> list[str]:
    return [class_folder(i, n, ctx.train.num_classes) for i, n in enumerate(ctx.train.class_names)]
