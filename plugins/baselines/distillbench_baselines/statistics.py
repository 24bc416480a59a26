"""Statistics matching, as G-VBSM and EDC do it: the moments of what enters every BatchNorm2d and Conv2d of a
teacher, on the synthetic batch, against the real data's.

Facts from shaoshitong/G_VBSM_Dataset_Condensation@1ed80b0 (``Branch_CIFAR_10/recover/utils.py`` L103-237
``BNFeatureHook``, ``ConvFeatureHook``; ImageNet: ``Branch_full_ImageNet_1k/recover/utils.py``) and
shaoshitong/EDC@80116a7 (``Branch_CIFAR_10/recover/utils.py`` L194-259, L384-516):

- the moments of a layer's input x [B, C, H, W]: the channel mean and biased variance over (B, H, W); for a
  Conv2d also, per cell of a P x P grid (x resized bilinearly to the next multiple of P; P = 4 up to 64 px, 16 on
  ImageNet), the mean and biased variance over (B, C, P, P);
- targets: a BatchNorm layer's running mean and variance; for a Conv2d, the mean over one pass of the augmented
  real training set of the per-batch moments (batch 64, each weighted by its size); EDC adds per-class targets,
  the class means of the per-image moments (over (H, W), and over (C, P, P) per cell);
- on the synthetic side each moment m is smoothed: e <- a e + (1 - a) m (e from 0, no gradient), and the loss
  sees e + m - stop_gradient(m), the smoothed value with the current moment's gradient;
- a layer's loss: the sum over its moments of ||target - value||_2 (not squared); with class targets (EDC),
  half that against the global targets plus half against the mean of the batch's labels' class targets;
- the layers are weighted 1, except the first hooked one (the first convolution, whose input is the image) by
  ``first_multiplier``; G-VBSM drops each convolution's term with probability ``drop_rate`` per forward.
"""
from distillbench.api import UsageError

MOMENTS = {"batch_norm": ("mean", "var"), "conv": ("mean", "var", "cell_mean", "cell_var")}


def matched_layers(model) -> list:
    """(name, module, kind) of every BatchNorm2d and Conv2d of ``model``, in module order."""
    import torch
    kinds = {torch.nn.BatchNorm2d: "batch_norm", torch.nn.Conv2d: "conv"}
    return [(name, module, kinds[type(module)]) for name, module in model.named_modules() if type(module) in kinds]


def cells(x, patch: int):
    """``x [B, C, H, W]`` resized bilinearly to multiples of ``patch`` and cut into a grid of patch x patch cells:
    ``[B, cells, C * patch * patch]``."""
    import torch.nn.functional as F
    height, width = (-(-side // patch) * patch for side in x.shape[-2:])
    if (height, width) != tuple(x.shape[-2:]):
        x = F.interpolate(x, [height, width], mode="bilinear")
    b, c = x.shape[:2]
    grid = x.view(b, c, height // patch, patch, width // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return grid.reshape(b, (height // patch) * (width // patch), c * patch * patch)


def batch_moments(x, kind: str, patch: int) -> dict:
    """The layer input's moments over the whole batch (what the synthetic batch is matched by)."""
    moments = {"mean": x.mean((0, 2, 3)), "var": x.var((0, 2, 3), unbiased=False)}
    if kind == "conv":
        grid = cells(x, patch).transpose(0, 1).flatten(1)
        moments.update(cell_mean=grid.mean(1), cell_var=grid.var(1, unbiased=False))
    return moments


def image_moments(x, kind: str, patch: int) -> dict:
    """The same moments of each image on its own, ``[B, ...]`` (EDC's class targets average them)."""
    moments = {"mean": x.mean((2, 3)), "var": x.var((2, 3), unbiased=False)}
    if kind == "conv":
        grid = cells(x, patch)
        moments.update(cell_mean=grid.mean(2), cell_var=grid.var(2, unbiased=False))
    return moments


def real_targets(model, batches, count: int, patch: int, num_classes: int = 0) -> dict:
    """One pass of ``model`` (eval mode, no gradient) over ``batches`` of (normalised augmented images, labels),
    ``count`` images in all: ``{"LAYER.MOMENT": tensor}`` for each Conv2d's batch moments averaged over the
    batches (weighted by size), and with ``num_classes``, ``{"LAYER.class.MOMENT": [num_classes, ...]}`` for
    every layer's class means of the image moments."""
    import torch
    layers = matched_layers(model)
    sums, class_sums = {}, {}
    counts = torch.zeros(max(num_classes, 1))
    labels_now = []

    def hook(name, kind):
        def collect(_module, inputs, _output):
            x = inputs[0].float()
            if kind == "conv":
                for moment, value in batch_moments(x, kind, patch).items():
                    sums[f"{name}.{moment}"] = sums.get(f"{name}.{moment}", 0) + value * len(x) / count
            if num_classes:
                for moment, value in image_moments(x, kind, patch).items():
                    key = f"{name}.class.{moment}"
                    total = class_sums.setdefault(key, value.new_zeros(num_classes, *value.shape[1:]))
                    total.index_add_(0, labels_now[0], value)
        return collect
    handles = [module.register_forward_hook(hook(name, kind)) for name, module, kind in layers]
    try:
        with torch.inference_mode():
            for images, labels in batches:
                labels_now[:] = [labels.to(images.device)]
                model(images)
                counts += torch.bincount(labels.cpu(), minlength=len(counts))[: len(counts)]
    finally:
        for handle in handles:
            handle.remove()
    if num_classes and (counts == 0).any():
        raise UsageError(f"class {int((counts == 0).nonzero()[0])} has no training image to take statistics from")
    per_class = {key: total.cpu() / counts.view(-1, *[1] * (total.dim() - 1)) for key, total in class_sums.items()}
    return {**{key: value.cpu() for key, value in sums.items()}, **per_class}


class Matching:
    """The statistics loss of one teacher: forward hooks on its BatchNorm2d and Conv2d layers that compare each
    forward's moments (smoothed with ``momentum``) with ``targets``; :meth:`loss` after a forward."""

    def __init__(self, model, targets: dict, momentum: float, patch: int, first_multiplier: float,
                 class_weight: float = 0.0, drop_rate: float = 0.0, generator=None):
        self.layers = matched_layers(model)
        if not self.layers:
            raise UsageError("statistics matching needs a teacher with BatchNorm2d or Conv2d layers")
        self.targets, self.momentum, self.patch = targets, momentum, patch
        self.first_multiplier, self.class_weight = first_multiplier, class_weight
        self.drop_rate, self.generator = drop_rate, generator
        self.smoothed = {}
        self.losses = [None] * len(self.layers)
        self.labels = None
        self.handles = [module.register_forward_hook(self._hook(i)) for i, (_, module, _) in enumerate(self.layers)]

    def _target(self, name, module, kind, moment):
        if kind == "batch_norm":
            return {"mean": module.running_mean, "var": module.running_var}[moment]
        return self.targets[f"{name}.{moment}"]

    def _hook(self, i):
        import torch
        name, module, kind = self.layers[i]

        def hook(_module, inputs, _output):
            if kind == "conv" and self.drop_rate and torch.rand(1, generator=self.generator) < self.drop_rate:
                self.losses[i] = 0.0
                return
            global_loss, class_loss = 0.0, 0.0
            for moment, value in batch_moments(inputs[0], kind, self.patch).items():
                key = f"{name}.{moment}"
                with torch.no_grad():
                    self.smoothed[key] = (self.momentum * self.smoothed.get(key, 0.0)
                                          + (1 - self.momentum) * value.detach())
                seen = self.smoothed[key] + value - value.detach()
                global_loss = global_loss + (self._target(name, module, kind, moment) - seen).norm(2)
                if self.class_weight:
                    wanted = self.targets[f"{name}.class.{moment}"][self.labels].mean(0)
                    class_loss = class_loss + (wanted - seen).norm(2)
            self.losses[i] = (global_loss if not self.class_weight else
                              (1 - self.class_weight) * global_loss + self.class_weight * class_loss)
        return hook

    def loss(self):
        return sum((self.first_multiplier if i == 0 else 1.0) * l for i, l in enumerate(self.losses))

    def remove(self):
        for handle in self.handles:
            handle.remove()
