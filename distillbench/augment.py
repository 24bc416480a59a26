"""Batched on-device augmentation and mixing: one kernel per batch, no per-image Python.

A crop is a box in whole pixels (left, top, width, height) and a flip flag, drawn for the whole batch at once;
:func:`warp` crops, resizes and flips every image of a batch in one ``grid_sample``, exactly as torchvision's
``resized_crop`` (bilinear, half-pixel centres, the box's edge pixels repeated) and ``hflip`` do image by image.
The random boxes follow torchvision's RandomResizedCrop (area fraction in [scale_min, 1], log-uniform aspect
ratio in [3/4, 4/3], sides rounded to whole pixels, ten tries, whole-image fallback) and RandomCrop with zero
padding.
"""
import math

import torch
import torch.nn.functional as F


def warp(x, boxes):
    """Crop ``x [n, C, S, S]`` to ``boxes [n, 5]`` = (left, top, width, height, flip) in pixels, resize back to S
    (bilinear, as ``torch.nn.functional.interpolate`` on the cropped patch) and mirror where flip is 1.  Pixels
    of a box outside the image are black (RandomCrop's zero padding)."""
    size = x.shape[-1]
    left, top, width, height, flip = boxes.to(x.dtype).unbind(1)
    centres = torch.arange(size, device=x.device, dtype=x.dtype) + 0.5

    def axis(start, length):  # normalised source coordinate of every output column (or row)
        inside = torch.minimum((centres * length[:, None] / size - 0.5).clamp(min=0), length[:, None] - 1)
        return (2 * (start[:, None] + inside) + 1) / size - 1
    gx, gy = axis(left, width), axis(top, height)
    gx = torch.where(flip[:, None] > 0, gx.flip(1), gx)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _flips(n, generator, device, flip: bool):
    if not flip:
        return torch.zeros(n, device=device)
    return (torch.rand(n, generator=generator, device=device) < 0.5).float()


def resized_crop_params(n: int, size: int, generator, device, scale_min: float = 0.08, flip: bool = True,
                        tries: int = 10):
    """:func:`warp` boxes of torchvision's RandomResizedCrop + horizontal flip for ``n`` images of ``size`` px:
    each image gets the first of ``tries`` random boxes that fits inside it, or the whole image."""
    u = torch.rand(2, tries, n, generator=generator, device=device)
    area = (scale_min + (1 - scale_min) * u[0]) * size * size
    ratio = torch.exp(math.log(3 / 4) + math.log(16 / 9) * u[1])
    w, h = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
    fits = (w >= 1) & (w <= size) & (h >= 1) & (h <= size)
    first = fits.to(torch.uint8).argmax(0, keepdim=True)
    w = torch.where(fits.any(0), w.gather(0, first)[0], float(size))
    h = torch.where(fits.any(0), h.gather(0, first)[0], float(size))
    position = torch.rand(2, n, generator=generator, device=device)
    left, top = (position[0] * (size - w + 1)).floor(), (position[1] * (size - h + 1)).floor()
    return torch.stack([left, top, w, h, _flips(n, generator, device, flip)], 1)


def shuffle_patches(x, generator, factor: int):
    """RDED's ShufflePatches(factor) (``validation/utils.py`` L164-188), per image: cut into ``factor`` vertical
    strips and put them in a random order, then the same with horizontal strips.  A no-op for factor 1."""
    if factor == 1:
        return x
    n, size = x.shape[0], x.shape[-1]
    strips = torch.arange(size, device=x.device).tensor_split(factor)
    out = x
    for dim in (3, 2):  # columns, then rows
        orders = torch.rand(n, factor, generator=generator, device=x.device).argsort(1)
        shuffled = torch.empty_like(out)
        for order in orders.unique(dim=0):
            rows = (orders == order).all(1)
            index = torch.cat([strips[k] for k in order.tolist()])
            shuffled[rows] = out[rows].index_select(dim, index)
        out = shuffled
    return out


def shift_params(n: int, size: int, generator, device, pad: int = 4, flip: bool = True):
    """:func:`warp` boxes of RandomCrop(size, padding=pad) + flip (the teachers' CIFAR augmentation)."""
    offsets = torch.randint(-pad, pad + 1, (2, n), generator=generator, device=device).float()
    full = torch.full((n,), float(size), device=device)
    return torch.stack([offsets[0], offsets[1], full, full, _flips(n, generator, device, flip)], 1)


def draw_mix(kind: str, n: int, size: int, generator, rng, alpha: float):
    """One batch's mixing (CutMix (Yun et al.) as in RDED/SRe2L, mixup, or none): (permutation, lam, box).

    CutMix pastes one box for the whole batch, from a permutation; lam is the kept area fraction and the box
    (x0, y0, x1, y1).  The box and lam come from the host ``random.Random`` ``rng``, the permutation from the
    device ``generator``, so nothing waits on the device."""
    device = generator.device
    if kind == "none":
        return torch.arange(n, device=device), 1.0, None
    if kind == "mixup":
        lam = rng.betavariate(alpha, alpha)
        return torch.randperm(n, device=device, generator=generator), lam, None
    cut = math.sqrt(1 - rng.betavariate(alpha, alpha))
    half = int(size * cut) // 2  # the box's side is int(size * cut), before clipping to the image
    cx, cy = rng.randrange(size), rng.randrange(size)
    x0, x1 = max(cx - half, 0), min(cx + half, size)
    y0, y1 = max(cy - half, 0), min(cy + half, size)
    perm = torch.randperm(n, device=device, generator=generator)
    return perm, 1 - (x1 - x0) * (y1 - y0) / size ** 2, (x0, y0, x1, y1)


def mix(x, perm, lam: float, box):
    """Apply :func:`draw_mix`'s draw: paste ``box`` from ``x[perm]`` (CutMix), or blend with weight ``lam``."""
    if box is not None:
        x0, y0, x1, y1 = box
        mixed = x.clone()
        mixed[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        return mixed
    return x if lam == 1.0 else lam * x + (1 - lam) * x[perm]
