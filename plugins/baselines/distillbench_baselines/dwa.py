"""DWA (Du et al., "Diversity-Driven Synthesis: Enhancing Dataset Distillation through Directed Weight
Adjustment", NeurIPS 2024).

SRe2L's recovery (:mod:`distillbench_baselines.recovery`) on a teacher adjusted once per batch, from
AngusDujw/Diversity-Driven-Synthesis@c5b125f (``distillation/distillation_{cifar,tiny,imgnet}.py``,
``distillation/perterb.py``, ``distillation/utils.py``):

- each batch (one image per class of a chunk, as SRe2L) starts from real images, one per class (``real_images``;
  the official code takes image ``ipc_id`` of each class folder, the README calls them random samples);
- at its first iteration, before any image update, the teacher's weights (every parameter, BatchNorm affine and
  classifier included; running statistics untouched) take K steps of gradient ascent on the cross-entropy of
  that first augmented view, each of length rho / K along the gradient divided by its global L2 norm
  (``perterb.py`` L20-32, ``_grad_norm`` L54-64); the batch is then recovered on the adjusted teacher, whose
  weights are never restored during the batch;
- the BatchNorm loss weights its variance term by ``r_var``: r_var ||var - running_var|| + ||mean -
  running_mean|| (``utils.py`` L52-59);
- the ascent passes' backward also reaches the images, so the first Adam step sees their K cross-entropy
  gradients besides its own, as in the official loop (it zeroes the images' gradient before the ascent only).

Per dataset (options left unset): CIFAR-100 ``scripts/run_cifar.sh``: lr 0.25, 1000 iterations, r_bn 0.01,
r_var 11, K 12, rho 0.015, jitter 4, no crop; Tiny-ImageNet ``run_tiny.sh``: lr 0.1, 2000 iterations, r_bn 0.01,
r_var 11, K 12, rho 0.015; ImageNet-1K (README): lr 0.25, 2000 iterations, r_bn 0.01, r_var 2, K 15, rho 0.015,
jitter 32.  Teachers: ResNet-18 with a 3x3 stem on CIFAR and Tiny, torchvision's ResNet-18 on ImageNet.

Deviations: every batch adjusts a fresh copy of the teacher (on ImageNet the official loop lets the ten batches
of an IPC index accumulate their adjustments, and the first ascent of each later batch sees the previous batch's
leftover weight gradients); CIFAR-10, MNIST and other small sets without a script use CIFAR-100's values (the
argparse defaults, K 1 and rho 0.05, are placeholders no script runs), with conv3 as teacher off CIFAR; real
images are resized and centre-cropped as the dataset loads them (the official ImageNet script squashes to 224);
seeded draws; PNG instead of JPEG.  Checked beside the official ``Perterb.first_step`` (K = 12, rho = 0.015, one
small teacher and input): the adjusted weights and the images' accumulated gradient differ by exactly 0.
"""
from dataclasses import dataclass
from typing import Optional

from distillbench.api import UsageError, option
from distillbench_baselines import recovery


@dataclass(frozen=True)
class Options(recovery.Options):
    r_var: Optional[float] = option(None, "weight of the BatchNorm variance term; none: the dataset's script")
    steps: Optional[int] = option(None, "gradient-ascent steps K of the weight adjustment; none: the dataset's script")
    rho: Optional[float] = option(None, "length bound of the whole adjustment (each step rho / K); none: the dataset's "
                              "script")

    def __post_init__(self):
        super().__post_init__()
        if self.steps is not None and self.steps < 0:
            raise UsageError("option steps must be 0 (no adjustment) or more")


def directed_weight_adjustment(model, view, labels, steps: int, rho: float) -> None:
    """Move ``model``'s parameters, in place, ``steps`` times by (rho / steps) g / ||g||, g the gradient of the
    cross-entropy of ``view`` (``||.||``: the L2 norm over all parameters together)."""
    import torch
    import torch.nn.functional as F
    params = list(model.parameters())
    model.requires_grad_(True)
    try:
        for _ in range(steps):
            F.cross_entropy(model(view), labels).backward()
            grads = [p.grad for p in params if p.grad is not None]
            scale = rho / steps / (torch.stack([g.norm(2) for g in grads]).norm(2) + 1e-12)
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        p.add_(p.grad * scale)
                    p.grad = None
    finally:
        model.requires_grad_(False)


class AdjustedTeacherObjective(recovery.TeacherObjective):
    """SRe2L's loss on a copy of the teacher that the first view of the batch adjusts."""

    def __init__(self, teacher, options):
        import copy
        super().__init__(copy.deepcopy(teacher), options.r_bn, options.first_bn_multiplier, options.r_var)
        self.steps, self.rho = options.steps, options.rho

    def __call__(self, view, labels, iteration: int):
        if iteration == 0 and self.steps:
            directed_weight_adjustment(self.teacher, view, labels, self.steps, self.rho)
        return super().__call__(view, labels, iteration)


class DWA(recovery.Recovery):
    name = "dwa"
    description = "DWA (NeurIPS 2024): SRe2L's recovery from real images on a teacher adjusted per batch"
    citation = ('Du, Jiang, Wang, Zhou and Li, "Diversity-Driven Synthesis: Enhancing Dataset Distillation through '
                'Directed Weight Adjustment", NeurIPS 2024; code: github.com/AngusDujw/Diversity-Driven-Synthesis')
    smoke_options = {"iterations": "3", "steps": "2"}
    Options = Options
    draws_real_images = True  # a class's IPC indices start from different real images: IPC <= the class size

    def recipe(self, spec) -> dict:
        """``run_cifar.sh`` up to 32 px, ``run_tiny.sh`` at 64, the README's ImageNet command beyond."""
        small, tiny = spec.image_size <= 32, spec.image_size <= 64
        cifar = spec.name in ("cifar10", "cifar100")
        return {"iterations": 1000 if small else 2000, "lr": 0.25 if small or not tiny else 0.1, "r_bn": 0.01,
                "r_var": 11.0 if tiny else 2.0, "steps": 12 if tiny else 15, "rho": 0.015,
                "jitter": 4 if tiny else 32, "roll": "positive",
                "teacher_arch": "conv3" if small and not cifar else "resnet18_modified" if tiny else "resnet18"}

    def initial_images(self, unit, ctx, generator):
        return self.real_images(unit, ctx)

    def objective(self, unit, ctx, generator):
        return AdjustedTeacherObjective(self.teacher, self.options)

    def notes(self, ipc: int) -> dict:
        return {"dwa": {"deviations": "a fresh copy of the teacher adjusted per batch (no accumulation across an "
                                      "ImageNet IPC index); CIFAR-100's script values on small sets without one; "
                                      "real images resized and centre-cropped as loaded; seeded draws; PNG"}}
