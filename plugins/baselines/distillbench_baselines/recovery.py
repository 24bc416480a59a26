"""The SRe2L family's recovery engine: images optimised against a frozen teacher until it recognises them and
their batch statistics match the ones it saw in training.

SRe2L's loop (VILA-Lab/SRe2L@8d00cba ``recover/data_synthesis.py``) is the frame: a batch holds one image of
each class of a chunk (a unit is one IPC index and one chunk), starts from N(0, 1) in normalised space, and is
optimised with Adam (betas 0.5, 0.9) under a cosine learning rate for ``iterations`` steps on a randomly
augmented view (one crop box, flip and roll for the whole batch); pixels are clamped to [0, 1] after each step
and the last iterate is kept, truncated to 8 bits.  What the family's methods change, they change through
:class:`Recovery`'s hooks, never through a copy of the loop:

- :meth:`Recovery.initial_images`: where a batch starts (DWA: real images; EDC: real images or collages);
- :meth:`Recovery.crop`: the iteration's crop and flip (CDA: a curriculum on the crop's area; G-VBSM: padded
  crops);
- :meth:`Recovery.objective`: the loss of a view, built once per batch (G-VBSM, EDC: several teachers and
  more statistics; DWA: a teacher adjusted for the batch).
"""
import math
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import UsageError, check_finite, option
from distillbench_baselines.teacher import TeacherMethod


@dataclass(frozen=True)
class Common:
    """What every method of the family sets: the loop's length and step, the roll, the teachers."""
    iterations: Optional[int] = option(None, "recovery steps per batch; none: the dataset's script")
    lr: Optional[float] = option(None, "Adam learning rate of the images, cosine schedule; none: the dataset's "
                                       "script")
    jitter: Optional[int] = option(None, "random roll in pixels; none: the dataset's script")
    roll: Optional[Literal["positive", "symmetric"]] = option(None, "roll offsets in [0, jitter], or [-jitter, "
                                                                    "jitter]; none: the dataset's script")
    teacher: Optional[str] = option(None, "ARCH=PATH of the teacher (several: comma-separated); default: the "
                                          "cached teachers of teacher_arch")
    teacher_arch: Optional[str] = option(None, "architecture of the cached teacher (several: comma-separated; "
                                               "`distillbench train-teacher`); none: the dataset's script")
    normalization: Literal["dataset", "imagenet"] = option("dataset", "the teachers' input normalisation")

    def __post_init__(self):
        if self.iterations is not None and self.iterations < 1:
            raise UsageError("option iterations must be at least 1")


@dataclass(frozen=True)
class Options(Common):
    """SRe2L's loss and batches: one image per class of a chunk."""
    r_bn: Optional[float] = option(None, "weight of the BatchNorm-statistics loss; none: the dataset's script")
    first_bn_multiplier: float = option(10.0, "extra weight of the first BatchNorm layer")
    classes_per_batch: int = option(100, "classes recovered together in one batch")

    def __post_init__(self):
        super().__post_init__()
        if self.classes_per_batch < 1:
            raise UsageError("option classes_per_batch must be at least 1")


class BNStatistics:
    """Forward hooks that collect, per BatchNorm2d layer, the distance of the batch statistics to the running ones
    (``recover/utils.py`` L92-104 ``BNFeatureHook``, registered on every ``nn.BatchNorm2d``, ``data_synthesis.py``
    L27-30; other norm layers are not hooked).  ``var_weight`` scales the variance term (DWA's ``r_var``)."""

    def __init__(self, model, var_weight: float = 1.0):
        import torch
        self.var_weight = var_weight
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        if not self.layers:
            raise UsageError("the SRe2L family needs a teacher with BatchNorm2d layers (e.g. conv3, "
                             "resnet18_modified)")
        self.losses = [None] * len(self.layers)
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]

    def _hook(self, i):
        def hook(module, inputs, _output):
            x = inputs[0]
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            self.losses[i] = ((mean - module.running_mean).norm(2)
                              + self.var_weight * (var - module.running_var).norm(2))
        return hook

    def loss(self, first_multiplier: float):
        return sum((first_multiplier if i == 0 else 1.0) * l for i, l in enumerate(self.losses))

    def remove(self):
        for handle in self.handles:
            handle.remove()


class TeacherObjective:
    """SRe2L's loss, CE(teacher(view), y) + r_bn * R_BN; a context manager that holds the BatchNorm hooks."""

    def __init__(self, teacher, r_bn: float, first_bn_multiplier: float, var_weight: float = 1.0):
        self.teacher, self.r_bn, self.first_bn_multiplier = teacher, r_bn, first_bn_multiplier
        self.var_weight = var_weight

    def __enter__(self):
        self.statistics = BNStatistics(self.teacher, self.var_weight)
        return self

    def __exit__(self, *_):
        self.statistics.remove()

    def __call__(self, view, labels, iteration: int):
        import torch.nn.functional as F
        return (F.cross_entropy(self.teacher(view), labels)
                + self.r_bn * self.statistics.loss(self.first_bn_multiplier))


def cosine_lr(base: float, iteration: int, iterations: int) -> float:
    """``recover/utils.py`` ``lr_cosine_policy`` without warm-up: base * (1 + cos(pi * t / T)) / 2."""
    return 0.5 * (1 + math.cos(math.pi * iteration / iterations)) * base


def resized_crop(x, scale, generator):
    """RandomResizedCrop to the batch's size with area ``scale`` and ratio (3/4, 4/3), then a flip with
    probability 1/2: one box and one flip for the whole batch, as torchvision draws them on a batch tensor."""
    import torch
    from torchvision.transforms import RandomResizedCrop
    from torchvision.transforms.functional import resized_crop as crop
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        top, left, h, w = RandomResizedCrop.get_params(x, scale=list(scale), ratio=(3 / 4, 4 / 3))
    x = crop(x, top, left, h, w, list(x.shape[-2:]), antialias=True)
    return x.flip(-1) if torch.rand(1, generator=generator) < 0.5 else x


def padded_crop(x, pad: int, generator):
    """RandomCrop to the batch's size after zero padding by ``pad``, then a flip with probability 1/2: one
    offset and one flip for the whole batch."""
    import torch
    import torch.nn.functional as F
    height, width = x.shape[-2:]
    top, left = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    x = F.pad(x, (pad, pad, pad, pad))[..., top:top + height, left:left + width]
    return x.flip(-1) if torch.rand(1, generator=generator) < 0.5 else x


def roll(x, jitter: int, symmetric: bool, generator):
    """A circular shift by offsets in [0, jitter] (or [-jitter, jitter]) on both axes, shared by the batch."""
    import torch
    shift = torch.randint(-jitter if symmetric else 0, jitter + 1, (2,), generator=generator).tolist()
    return torch.roll(x, shifts=shift, dims=(2, 3))


class Recovery(TeacherMethod):
    """A method of the SRe2L family: the shared loop, and the hooks its members override."""

    Options = Options
    draws_real_images = False

    def units(self, num_classes: int, ipc: int):
        from distillbench.api import Unit
        per = self.options.classes_per_batch
        return [Unit(f"ipc-{slot:05d}-classes-{start:05d}", tuple(range(start, min(start + per, num_classes))),
                     (slot,) * len(range(start, min(start + per, num_classes))))
                for slot in range(ipc) for start in range(0, num_classes, per)]

    def initial_images(self, unit, ctx, generator):
        """The batch's starting point in normalised space: N(0, 1)."""
        import torch
        size = ctx.spec.image_size
        return torch.randn(len(unit.labels), 3, size, size, generator=generator).to(ctx.device)

    def real_images(self, unit, ctx):
        """One real training image per (label, slot), normalised: slot k of class c is image k of a shuffle of
        class c seeded by the run's seed, so a class's IPC indices start from different images (methods that
        call it say ``draws_real_images``, which bounds IPC by the class size)."""
        import torch
        from distillbench.api import derive_seed
        picks = []
        for label, slot in zip(unit.labels, unit.slots):
            index = ctx.train.indices_of(label)
            shuffle = torch.Generator().manual_seed(derive_seed(ctx.seed, f"real-images-of-class-{label}"))
            picks.append(index[torch.randperm(len(index), generator=shuffle)[slot]])
        return self.normalize(ctx.train.load(torch.stack(picks)).to(ctx.device).float() / 255)

    def crop(self, x, iteration: int, generator):
        """The iteration's crop and flip of the batch: SRe2L's RandomResizedCrop (0.08, 1) and flip from 64 px up
        (``data_synthesis.py``), none on CIFAR (``recover_cifar.py``)."""
        return resized_crop(x, (0.08, 1.0), generator) if x.shape[-1] >= 64 else x

    def objective(self, unit, ctx, generator) -> TeacherObjective:
        return TeacherObjective(self.teacher, self.options.r_bn, self.options.first_bn_multiplier)

    def distill_unit(self, unit, ctx):
        import torch
        opts = self.options
        generator = ctx.generator(unit)
        labels = torch.tensor(unit.labels, device=ctx.device)
        mean, std = self.normalize.mean, self.normalize.std
        x = self.initial_images(unit, ctx, generator).requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=opts.lr, betas=(0.5, 0.9), eps=1e-8)
        with self.objective(unit, ctx, generator) as objective:
            for it in ctx.progress(range(opts.iterations), desc=f"recover {unit.id}"):
                optimizer.param_groups[0]["lr"] = cosine_lr(opts.lr, it, opts.iterations)
                view = roll(self.crop(x, it, generator), opts.jitter, opts.roll == "symmetric", generator)
                optimizer.zero_grad(set_to_none=True)  # before the objective, which may backpropagate itself (DWA)
                objective(view, labels, it).backward()
                optimizer.step()
                with torch.no_grad():  # keep pixels in [0, 1]
                    x.copy_(torch.max(torch.min(x, (1 - mean) / std), -mean / std))
        check_finite(x.detach(), f"images recovered for {unit.id} after {opts.iterations} iterations",
                     "lower --option lr or check the teacher")
        pixels = (x.detach() * std + mean).clamp(0, 1)
        return (pixels * 255).to(torch.uint8).cpu()  # truncated, as data_synthesis.py L130-136 saves them
