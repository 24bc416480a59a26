"""The SRe2L family's recovery engine: images optimised against a frozen teacher until it recognises them and
their batch statistics match the ones it saw in training.

SRe2L's loop (VILA-Lab/SRe2L@8d00cba ``recover/data_synthesis.py``) is the frame: a batch holds one image of
each class of a chunk (a unit is one IPC index and one chunk), starts from N(0, 1) in normalised space, and is
optimised with Adam (betas 0.5, 0.9) under a cosine learning rate for ``iterations`` steps on a randomly
augmented view (one crop box, flip and roll for the whole batch); pixels are clamped to [0, 1] after each step
and the last iterate is kept, truncated to 8 bits.  What the family's methods change, they change through
:class:`Recovery`'s hooks, never through a copy of the loop:

- :meth:`Recovery.initial_images`: where a batch starts (EDC: real images);
- :meth:`Recovery.crop_scale`: RandomResizedCrop's area range at an iteration (CDA: a curriculum);
- :meth:`Recovery.objective`: the loss of a view, built once per batch (G-VBSM, EDC: several teachers and
  more statistics; DWA: a teacher adjusted for the batch).
"""
import math
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import UsageError, check_finite, option
from distillbench_baselines.teacher import TeacherMethod


@dataclass(frozen=True)
class Options:
    iterations: Optional[int] = option(None, "recovery steps per batch; none: the dataset's script")
    lr: Optional[float] = option(None, "Adam learning rate of the images, cosine schedule; none: the dataset's "
                                       "script")
    r_bn: Optional[float] = option(None, "weight of the BatchNorm-statistics loss; none: the dataset's script")
    first_bn_multiplier: float = option(10.0, "extra weight of the first BatchNorm layer")
    jitter: Optional[int] = option(None, "random roll in pixels; none: 4 up to 64 px, 32 beyond")
    roll: Optional[Literal["positive", "symmetric"]] = option(None, "roll offsets in [0, jitter], or [-jitter, "
                                                                    "jitter]; none: the dataset's script")
    classes_per_batch: int = option(100, "classes recovered together in one batch")
    teacher: Optional[str] = option(None, "ARCH=PATH of the teacher; default: the cached teacher of teacher_arch")
    teacher_arch: Optional[str] = option(None, "architecture of the cached teacher (`distillbench train-teacher`); "
                                               "none: the dataset's script")
    normalization: Literal["dataset", "imagenet"] = option("dataset", "the teacher's input normalisation")

    def __post_init__(self):
        if (self.iterations is not None and self.iterations < 1) or self.classes_per_batch < 1:
            raise UsageError("options iterations and classes_per_batch must be at least 1")


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


def augment(x, size: int, jitter: int, symmetric: bool, generator, scale=None):
    """One crop box (RandomResizedCrop with area ``scale``, skipped when None) and flip, then one roll, shared by
    the whole batch, as the official code draws them."""
    import torch
    from torchvision.transforms import RandomResizedCrop
    from torchvision.transforms.functional import resized_crop
    if scale is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            top, left, h, w = RandomResizedCrop.get_params(x, scale=list(scale), ratio=(3 / 4, 4 / 3))
        x = resized_crop(x, top, left, h, w, [size, size], antialias=True)
        if torch.rand(1, generator=generator) < 0.5:
            x = x.flip(-1)
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
        class c seeded by the run's seed, so a class's IPC indices start from different images."""
        import torch
        from distillbench.api import derive_seed
        picks = []
        for label, slot in zip(unit.labels, unit.slots):
            index = ctx.train.indices_of(label)
            shuffle = torch.Generator().manual_seed(derive_seed(ctx.seed, f"real-images-of-class-{label}"))
            picks.append(index[torch.randperm(len(index), generator=shuffle)[slot % len(index)]])
        return self.normalize(ctx.train.load(torch.stack(picks)).to(ctx.device).float() / 255)

    def crop_scale(self, iteration: int, image_size: int):
        """RandomResizedCrop's area range at ``iteration``, or None for no crop: SRe2L crops (0.08, 1) from 64 px
        up (``data_synthesis.py``) and not on CIFAR (``recover_cifar.py``)."""
        return (0.08, 1.0) if image_size >= 64 else None

    def objective(self, unit, ctx, generator) -> TeacherObjective:
        return TeacherObjective(self.teacher, self.options.r_bn, self.options.first_bn_multiplier)

    def distill_unit(self, unit, ctx):
        import torch
        opts, size = self.options, ctx.spec.image_size
        generator = ctx.generator(unit)
        labels = torch.tensor(unit.labels, device=ctx.device)
        mean, std = self.normalize.mean, self.normalize.std
        x = self.initial_images(unit, ctx, generator).requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=opts.lr, betas=(0.5, 0.9), eps=1e-8)
        with self.objective(unit, ctx, generator) as objective:
            for it in ctx.progress(range(opts.iterations), desc=f"recover {unit.id}"):
                optimizer.param_groups[0]["lr"] = cosine_lr(opts.lr, it, opts.iterations)
                view = augment(x, size, opts.jitter, opts.roll == "symmetric", generator, self.crop_scale(it, size))
                optimizer.zero_grad(set_to_none=True)  # before the objective, which may backpropagate itself (DWA)
                objective(view, labels, it).backward()
                optimizer.step()
                with torch.no_grad():  # keep pixels in [0, 1]
                    x.copy_(torch.max(torch.min(x, (1 - mean) / std), -mean / std))
        check_finite(x.detach(), f"images recovered for {unit.id} after {opts.iterations} iterations",
                     "lower --option lr or check the teacher")
        pixels = (x.detach() * std + mean).clamp(0, 1)
        return (pixels * 255).to(torch.uint8).cpu()  # truncated, as data_synthesis.py L130-136 saves them
