"""Coresets: real images chosen per class on a teacher's features, the baselines a distilled set must beat.

- ``herding`` (Welling, "Herding Dynamical Weights to Learn", ICML 2009; the greedy form of Rebuffi et al.,
  iCaRL, CVPR 2017): repeatedly add the image that brings the mean of the chosen features closest to the
  class's mean feature.  No randomness: every seed gives the same set.
- ``kcenter`` (greedy k-center, Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
  Approach", ICLR 2018): start from a random image (seeded), then repeatedly add the image farthest from every
  chosen one.

Features are the input of the teacher's classifier (its last linear layer; with several teachers, theirs side by
side), on the un-augmented training images; distances are Euclidean.  The teacher is chosen as for RDED (the
cached ``train-teacher`` model of ``teacher_arch``, or ``teacher=ARCH=PATH``).  The selection is pure:
:func:`herding_order` and :func:`k_center_order` take a feature matrix.
"""
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import UsageError, option
from distillbench_baselines.teacher import TeacherMethod, default_teacher_arch


@dataclass(frozen=True)
class Options:
    teacher: Optional[str] = option(None, "ARCH=PATH of the teacher; default: the cached teacher of teacher_arch")
    teacher_arch: Optional[str] = option(None, "architecture of the cached teacher (`distillbench train-teacher`); "
                                               "none: conv3 up to 32 px, conv4 at 64, else ResNet-18")
    normalization: Literal["dataset", "imagenet"] = option("dataset", "the teacher's input normalisation")
    batch_size: int = option(500, "images per teacher call")

    def __post_init__(self):
        if self.batch_size < 1:
            raise UsageError("option batch_size must be at least 1")


def herding_order(features, k: int) -> list:
    """Indices of ``k`` rows of ``features [n, d]``, each the one that brings the running mean of the chosen
    rows closest to the mean of all rows."""
    import torch
    target, total, chosen = features.mean(0), torch.zeros_like(features[0]), []
    available = torch.ones(len(features), dtype=torch.bool)
    for step in range(1, k + 1):
        gaps = ((total + features) / step - target).norm(dim=1).masked_fill(~available, float("inf"))
        best = int(gaps.argmin())
        chosen.append(best)
        total, available[best] = total + features[best], False
    return chosen


def k_center_order(features, k: int, generator) -> list:
    """Indices of ``k`` rows of ``features [n, d]``: a random first row, then each time the row farthest from
    the chosen ones."""
    import torch
    chosen = [int(torch.randint(len(features), (1,), generator=generator))]
    nearest = (features - features[chosen[0]]).norm(dim=1)
    for _ in range(k - 1):
        best = int(nearest.argmax())
        chosen.append(best)
        nearest = torch.minimum(nearest, (features - features[best]).norm(dim=1))
    return chosen


class Coreset(TeacherMethod):
    """A per-class selection of real images on teacher features; subclasses give the order."""

    Options = Options
    draws_real_images = True

    def recipe(self, spec) -> dict:
        return {"teacher_arch": default_teacher_arch(spec)}

    def distill_unit(self, unit, ctx):
        import torch
        (label,) = set(unit.labels)
        index = ctx.train.indices_of(label)
        features = torch.cat([self.features(images, ctx.device)
                              for images in ctx.train.batches(index, self.options.batch_size)])
        return ctx.train.load(index[self.order(features.double(), len(unit.slots), ctx.generator(unit))])

    def features(self, images_u8, device):
        """The inputs of every classifier layer of the teacher (the last linear layers), side by side."""
        import torch
        captured = []
        heads = [m for m in self.teacher.modules() if isinstance(m, torch.nn.Linear)
                 and m.out_features == self.num_classes]
        hooks = [head.register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0].flatten(1)))
                 for head in heads]
        try:
            with torch.inference_mode():
                self.teacher(self.normalize(images_u8.to(device).float() / 255))
        finally:
            for hook in hooks:
                hook.remove()
        if not captured:
            raise UsageError("the teacher has no linear classifier layer to take features from")
        return torch.cat(captured, 1).float().cpu()

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.num_classes = ctx.train.num_classes

    def order(self, features, k: int, generator) -> list:
        raise NotImplementedError


class Herding(Coreset):
    name = "herding"
    description = "herding (Welling 2009): per class, real images whose feature mean tracks the class mean"
    citation = 'Welling, "Herding Dynamical Weights to Learn", ICML 2009'

    def order(self, features, k: int, generator) -> list:
        return herding_order(features, k)

    def notes(self, ipc: int) -> dict:
        return {"herding": {"seed": "not used: herding draws nothing"}}


class KCenter(Coreset):
    name = "kcenter"
    description = "k-center greedy (Sener & Savarese 2018): per class, real images that cover the feature space"
    citation = ('Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach", '
                'ICLR 2018')

    def order(self, features, k: int, generator) -> list:
        return k_center_order(features, k, generator)
