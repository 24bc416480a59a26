"""SRe2L (Yin et al., NeurIPS 2023, "Squeeze, Recover and Relabel").

Recover, from VILA-Lab/SRe2L@8d00cba (``recover/data_synthesis.py``, ``*small_dataset/recover_cifar.py``,
``recover_tiny.py``): images start as N(0, 1) in normalised space and are optimised with Adam
(betas 0.5, 0.9) under a cosine learning rate to minimise CE(teacher(x_aug), y) + r_bn * R_BN, where
R_BN = sum over BatchNorm layers of w_l (||mean_l - running_mean_l||_2 + ||var_l - running_var_l||_2)
on the augmented batch (biased variance; w = first_bn_multiplier = 10 for the first BN layer, 1 after),
and pixels are clamped to [0, 1] after each step; the last iterate is kept.  One batch holds one image of
each class (chunks of 100 classes), so a unit of work here is one IPC index, not one class.
Augmentation: a shared random roll by [0, jitter] pixels (CIFAR: jitter 4, no crop or flip); for
64 px and larger, RandomResizedCrop + flip first (Tiny: roll in [-4, 4], ImageNet: jitter 32).
Per dataset (:meth:`SRe2L.recipe`, options left unset): CIFAR ``recover_cifar.sh`` lr 0.25, 1000 iterations,
r_bn 0.01; Tiny-ImageNet ``recover_tiny.sh`` lr 0.1, 4000 iterations, r_bn 1.0; ImageNet ``recover.sh`` lr
0.25, 4000 iterations, r_bn 0.01.  Relabel is the shared evaluator's
job: the ``sre2l`` protocol is SRe2L's own (FKD labels per crop and epoch above 32 px).

Deviations: seeded initialisation and augmentation; PNG instead of JPEG (the same 8-bit pixels, truncated as the
official code truncates them, without JPEG's loss); the pixel clamp uses the teacher's normalisation (the CIFAR
script hard-codes mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)).  Checked side by side with the
official functions on one input and teacher: the loss is equal in float32, the input gradient within 1e-6
relative, the learning rates bit for bit (closing note of issue 17).
"""
import math
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import Unit, UsageError, check_finite, option
from distillbench_baselines.teacher import TeacherMethod


@dataclass(frozen=True)
class Options:
    iterations: Optional[int] = option(None, "recovery steps per batch; none: the dataset's script (CIFAR 1000, "
                                             "Tiny-ImageNet and ImageNet 4000)")
    lr: Optional[float] = option(None, "Adam learning rate of the images, cosine schedule; none: 0.1 on Tiny, "
                                       "else 0.25")
    r_bn: Optional[float] = option(None, "weight of the BatchNorm-statistics loss; none: 1.0 on Tiny, else 0.01")
    first_bn_multiplier: float = option(10.0, "extra weight of the first BatchNorm layer")
    jitter: Optional[int] = option(None, "random roll in pixels; none: 4 up to 64 px, 32 beyond")
    roll: Optional[Literal["positive", "symmetric"]] = option(None, "roll offsets in [0, jitter], or [-jitter, "
                                                                    "jitter]; none: symmetric on Tiny only")
    classes_per_batch: int = option(100, "classes recovered together in one batch")
    teacher: Optional[str] = option(None, "ARCH=PATH of the teacher; default: the cached teacher of teacher_arch")
    teacher_arch: Optional[str] = option(None, "architecture of the cached teacher (`distillbench train-teacher`); "
                                               "none: the dataset's script (conv3 up to 32 px, else ResNet-18)")
    normalization: Literal["dataset", "imagenet"] = option("dataset", "the teacher's input normalisation")

    def __post_init__(self):
        if (self.iterations is not None and self.iterations < 1) or self.classes_per_batch < 1:
            raise UsageError("options iterations and classes_per_batch must be at least 1")


class BNStatistics:
    """Forward hooks that collect, per BatchNorm2d layer, the distance of the batch statistics to the running ones
    (``recover/utils.py`` L92-104 ``BNFeatureHook``, registered on every ``nn.BatchNorm2d``, ``data_synthesis.py``
    L27-30; other norm layers are not hooked)."""

    def __init__(self, model):
        import torch
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        if not self.layers:
            raise UsageError("SRe2L needs a teacher with BatchNorm2d layers (e.g. conv3, resnet18_modified)")
        self.losses = [None] * len(self.layers)
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]

    def _hook(self, i):
        def hook(module, inputs, _output):
            x = inputs[0]
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            self.losses[i] = (mean - module.running_mean).norm(2) + (var - module.running_var).norm(2)
        return hook

    def loss(self, first_multiplier: float):
        return sum((first_multiplier if i == 0 else 1.0) * l for i, l in enumerate(self.losses))

    def remove(self):
        for handle in self.handles:
            handle.remove()


class SRe2L(TeacherMethod):
    name = "sre2l"
    description = "SRe2L (NeurIPS 2023): images recovered from noise by teacher CE + BatchNorm matching"
    citation = ('Yin, Xing and Shen, "Squeeze, Recover and Relabel: Dataset Condensation at ImageNet Scale From A '
                'New Perspective", NeurIPS 2023; code: github.com/VILA-Lab/SRe2L')
    smoke_options = {"iterations": "3"}
    Options = Options

    def recipe(self, spec) -> dict:
        """``recover_cifar.sh``, ``recover_tiny.sh``, ``recover.sh`` (ImageNet): their iterations, learning rate,
        BN weight, roll and squeeze teacher (CIFAR: ResNet-18 modified or ConvNet; here conv3 up to 32 px)."""
        tiny, large = spec.name == "tinyimagenet", spec.image_size > 64
        return {"iterations": 4000 if tiny or large else 1000, "lr": 0.1 if tiny else 0.25,
                "r_bn": 1.0 if tiny else 0.01, "jitter": 4 if spec.image_size <= 64 else 32,
                "roll": "symmetric" if tiny else "positive",
                "teacher_arch": "conv3" if spec.image_size <= 32 else "resnet18_modified" if tiny else "resnet18"}

    def units(self, num_classes: int, ipc: int) -> list[Unit]:
        per = self.options.classes_per_batch
        return [Unit(f"ipc-{slot:05d}-classes-{start:05d}", tuple(range(start, min(start + per, num_classes))),
                     (slot,) * len(range(start, min(start + per, num_classes))))
                for slot in range(ipc) for start in range(0, num_classes, per)]

    def distill_unit(self, unit, ctx):
        import torch
        import torch.nn.functional as F
        opts, size = self.options, ctx.spec.image_size
        generator = ctx.generator(unit)
        labels = torch.tensor(unit.labels, device=ctx.device)
        mean, std = self.normalize.mean, self.normalize.std
        x = torch.randn(len(labels), 3, size, size, generator=generator).to(ctx.device).requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=opts.lr, betas=(0.5, 0.9), eps=1e-8)
        hooks = BNStatistics(self.teacher)
        try:
            for it in ctx.progress(range(opts.iterations), desc=f"recover {unit.id}"):
                optimizer.param_groups[0]["lr"] = 0.5 * (1 + math.cos(math.pi * it / opts.iterations)) * opts.lr
                view = self.augment(x, size, opts.jitter, opts.roll == "symmetric", generator)
                loss = F.cross_entropy(self.teacher(view), labels) + opts.r_bn * hooks.loss(opts.first_bn_multiplier)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():  # keep pixels in [0, 1]
                    x.copy_(torch.max(torch.min(x, (1 - mean) / std), -mean / std))
        finally:
            hooks.remove()
        check_finite(x.detach(), f"images recovered for {unit.id} after {opts.iterations} iterations",
                     "lower --option lr or check the teacher")
        pixels = (x.detach() * std + mean).clamp(0, 1)
        return (pixels * 255).to(torch.uint8).cpu()  # truncated, as data_synthesis.py L130-136 saves them

    @staticmethod
    def augment(x, size: int, jitter: int, symmetric: bool, generator):
        """One crop box, flip and roll shared by the whole batch, as the official code does."""
        import torch
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.functional import resized_crop
        if size >= 64:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
                top, left, h, w = RandomResizedCrop.get_params(x, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
            x = resized_crop(x, top, left, h, w, [size, size], antialias=True)
            if torch.rand(1, generator=generator) < 0.5:
                x = x.flip(-1)
        shift = torch.randint(-jitter if symmetric else 0, jitter + 1, (2,), generator=generator).tolist()
        return torch.roll(x, shifts=shift, dims=(2, 3))

    def notes(self, ipc: int) -> dict:
        return {"sre2l": {"deviations": "seeded initialisation and augmentation; PNG output instead of JPEG"}}
