"""Batched on-device augmentation and mixing: one kernel per batch, no per-image Python.

The random crops follow torchvision's RandomResizedCrop (area fraction in
[scale_min, 1], log-uniform aspect ratio in [3/4, 4/3], retries, whole-image
fallback) but are drawn for the whole batch at once; crop, resize and flip
become one affine ``grid_sample`` per batch.
"""
import math

import torch
import torch.nn.functional as F


def warp(x, params):
    """Sample ``x`` through per-image affine maps ``params [n, 4]`` = (scale_x, scale_y, shift_x, shift_y) in [-1, 1]
    coordinates (a negative scale_x flips), bilinear; outside the image is black (RandomCrop's zero padding)."""
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = params.to(x.dtype).unbind(1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _flip_sign(n, generator, device, flip: bool):
    if not flip:
        return torch.ones(n, device=device)
    return torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)


def resized_crop_params(n: int, generator, device, scale_min: float = 0.08, flip: bool = True, tries: int = 10):
    """The :func:`warp` parameters of torchvision's RandomResizedCrop + horizontal flip, for ``n`` images.

    Like torchvision, each image gets the first of ``tries`` random boxes that
    fits inside it, or the whole image when none does; boxes are continuous
    (sub-pixel) rather than rounded to whole pixels.
    """
    u = torch.rand(2, tries, n, generator=generator, device=device)
    area = scale_min + (1 - scale_min) * u[0]
    ratio = torch.exp(math.log(3 / 4) + math.log(16 / 9) * u[1])
    w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    fits = (w <= 1) & (h <= 1)
    first = fits.to(torch.uint8).argmax(0, keepdim=True)
    w = torch.where(fits.any(0), w.gather(0, first)[0], 1.0)
    h = torch.where(fits.any(0), h.gather(0, first)[0], 1.0)
    centre = 2 * torch.rand(2, n, generator=generator, device=device) - 1
    return torch.stack([w * _flip_sign(n, generator, device, flip), h, centre[0] * (1 - w), centre[1] * (1 - h)], 1)


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
    """The :func:`warp` parameters of RandomCrop(size, padding=pad) + flip (the teachers' CIFAR augmentation)."""
    offsets = torch.randint(-pad, pad + 1, (2, n), generator=generator, device=device).float() * (2 / size)
    return torch.stack([_flip_sign(n, generator, device, flip), torch.ones(n, device=device), offsets[0], offsets[1]],
                       1)


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
    cw, ch = int(size * cut), int(size * cut)
    cx, cy = rng.randrange(size), rng.randrange(size)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, size)
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, size)
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
