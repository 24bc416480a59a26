"""``random``: IPC real training images per class, drawn without replacement, seeded.

The baseline every table needs (DD-Ranking's IOR is measured against it)."""
from distillbench import hookimpl
from distillbench.method import Distiller


class RandomSubset(Distiller):
    name = "random"
    description = "random real subset: IPC real training images per class, seeded"
    citation = "the baseline of every table; DD-Ranking (2025) measures its IOR against it"

    def distill_unit(self, unit, ctx):
        import torch
        (label,) = set(unit.labels)
        pool = ctx.train.indices_of(label)
        pick = pool[torch.randperm(len(pool), generator=ctx.generator(unit))[: len(unit.slots)]]
        return ctx.train.load(pick.sort().values)


@hookimpl
def register_methods(register):
    register(RandomSubset)
