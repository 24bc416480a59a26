"""The Distiller interface: what a dataset-distillation method implements.

A method splits its work into units (by default one per class; SRe2L, whose batches mix classes, uses one
per IPC index) and distills one unit at a time; :mod:`distillbench.runner` does the rest (resume, sharding,
seeding, progress, atomic output) the same for built-in and third-party methods.
"""
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from distillbench import distributed, options as options_mod
from distillbench.seeds import derive_seed


@dataclass(frozen=True)
class Unit:
    """One piece of work: the images with these (label, slot) pairs."""

    id: str
    labels: tuple
    slots: tuple


@dataclass
class UnitResult:
    """What ``distill_unit`` may return instead of bare images: the images and notes about the unit (which
    candidate group won, say).  The runner keeps the notes with the unit's marker and hands every unit's
    to :meth:`Distiller.finalize`."""

    images: object  # uint8 tensor [len(unit.labels), C, H, W]
    notes: dict = field(default_factory=dict)


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
        return distributed.progress(iterable, desc, total)


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

    def recipe(self, spec) -> dict:
        """The values the method's official scripts use on dataset ``spec`` for options whose default is None
        (iterations, learning rates, the teacher...).  Applied at run time where the user left them unset,
        and recorded in the manifest."""
        return {}

    def for_dataset(self, spec) -> "Distiller":
        """This method with its unset options filled by :meth:`recipe`."""
        unset = {key: value for key, value in self.recipe(spec).items() if getattr(self.options, key) is None}
        return type(self)(dataclasses.replace(self.options, **unset))

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
        """Load what the units and :meth:`finalize` need (models, statistics); called once per process,
        before the first unit, whenever the set is not finished yet."""

    def distill_unit(self, unit: Unit, ctx: RunContext):
        """uint8 images ``[len(unit.labels), C, H, W]`` at the dataset's size, in the unit's order; or a
        :class:`UnitResult` holding them and the unit's notes."""
        raise NotImplementedError

    def notes(self, ipc: int) -> dict:
        """Facts about this run worth keeping in the manifest (deviations, dropped terms)."""
        return {}

    def finalize(self, ctx: RunContext, folder: Path, unit_notes: dict) -> dict:
        """After the last unit, before the manifest (rank 0, after :meth:`setup`): write extra files into
        the set's folder (beside the class folders) and return facts for the manifest's notes.
        ``unit_notes`` maps unit id to the notes its :class:`UnitResult` carried (units without notes left out)."""
        return {}


def options_dict(method: Distiller) -> dict:
    return dataclasses.asdict(method.options)
