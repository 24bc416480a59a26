"""RDED (Sun et al., CVPR 2024, "On the Diversity and Realism of Distilled Dataset").

Facts from LINs-lab/RDED@3f6453d (``synthesize/main.py`` ``init_images``, ``synthesize/utils.py``): per class,
take ``mipc`` random real images; cut ``num_crop`` random square crops from each original file, at its full
resolution (RandomResizedCrop to side ``size // factor``, area scale (0.08, 1), ratio 1); score every crop by the
teacher's cross-entropy on the class after zero-padding it, centred, to full size in normalised space (lower =
more realistic); keep
each image's best crop, sort images by it, keep the best ``IPC * factor^2``; stitch factor x factor of them
into each image, cell k of image i holding selected crop k * IPC + i (nearest resize).  The scripts use
mipc 300 and num_crop 5, factor 1 for 32-64 px data and 2 for ImageNet-scale data.

Deviations: crops are drawn with a seeded generator (the official synthesis is unseeded) and saved as
PNG rather than JPEG; the teacher is distillbench's (the cached ``train-teacher`` model, or
``teacher=ARCH=PATH``, e.g. RDED's released ``{"model": ...}`` files, with ``normalization=imagenet``).
"""
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import UsageError, check_finite, option
from distillbench_baselines.teacher import TeacherMethod, default_teacher_arch


@dataclass(frozen=True)
class Options:
    mipc: int = option(300, "real images per class sampled as crop sources")
    num_crop: int = option(5, "random crops scored per source image")
    factor: Optional[int] = option(None, "crops stitched per side; none: the dataset's script (1 up to 64 px, else 2)")
    teacher: Optional[str] = option(None, "ARCH=PATH of the teacher; default: the cached teacher of teacher_arch")
    teacher_arch: Optional[str] = option(None, "architecture of the cached teacher (`distillbench train-teacher`); "
                                               "none: the dataset's script (conv3 up to 32 px, conv4 at 64, "
                                               "else ResNet-18)")
    normalization: Literal["dataset", "imagenet"] = option("dataset", "the teacher's input normalisation")
    batch_size: int = option(500, "crops scored per teacher call")

    def __post_init__(self):
        if min(self.mipc, self.num_crop, self.batch_size, self.factor or 1) < 1:
            raise UsageError("options mipc, num_crop, factor and batch_size must be at least 1")


def random_square_crops(images, count: int, out_size: int, generator, tries: int = 10):
    """``count`` RandomResizedCrop(out_size, scale (0.08, 1), ratio 1) crops of each image, a list of uint8
    ``[C, H, W]`` of any size (RDED crops the original files, ``synthesize/utils.py`` ``MultiRandomCrop``):
    ``[n * count, C, out, out]``.  As torchvision draws them: a square of area fraction U(0.08, 1) of the image,
    side rounded, the first of ``tries`` that fits, else the centred square of the shorter side."""
    import torch
    import torch.nn.functional as F
    crops = []
    for image in images:
        height, width = image.shape[-2:]
        shorter = min(height, width)
        sides = ((0.08 + 0.92 * torch.rand(count, tries, generator=generator)) * height * width).sqrt().round()
        fits = (sides >= 1) & (sides <= shorter)
        side = torch.where(fits.any(1), sides.gather(1, fits.to(torch.uint8).argmax(1, keepdim=True))[:, 0],
                           float(shorter))
        position = torch.rand(2, count, generator=generator)
        tops = torch.where(fits.any(1), (position[0] * (height - side + 1)).floor(), (height - side) // 2)
        lefts = torch.where(fits.any(1), (position[1] * (width - side + 1)).floor(), (width - side) // 2)
        for side_k, top, left in zip(side.long().tolist(), tops.long().tolist(), lefts.long().tolist()):
            crop = image[:, top:top + side_k, left:left + side_k].float().unsqueeze(0)
            crops.append(F.interpolate(crop, size=(out_size, out_size), mode="bilinear", antialias=True,
                                       align_corners=False))
    return torch.cat(crops)


def stitch(crops, ipc: int, factor: int, size: int):
    """ipc images of factor x factor cells; cell k of image i is crop k * ipc + i (row-major cells)."""
    import torch
    import torch.nn.functional as F
    edges = [size * j // factor for j in range(factor + 1)]
    out = torch.zeros(ipc, crops.shape[1], size, size, dtype=crops.dtype)
    for k in range(factor * factor):
        row, col = divmod(k, factor)
        h, w = edges[row + 1] - edges[row], edges[col + 1] - edges[col]
        cell = F.interpolate(crops[k * ipc:(k + 1) * ipc], size=(h, w), mode="nearest")
        out[:, :, edges[row]:edges[row + 1], edges[col]:edges[col + 1]] = cell
    return out


class RDED(TeacherMethod):
    name = "rded"
    description = "RDED (CVPR 2024): teacher-scored realistic crops of real images, stitched"
    citation = ('Sun et al., "On the Diversity and Realism of Distilled Dataset: An Efficient Dataset Distillation '
                'Paradigm", CVPR 2024; code: github.com/LINs-lab/RDED')
    smoke_options = {"mipc": "20", "num_crop": "2"}
    Options = Options

    def recipe(self, spec) -> dict:
        """``scripts/*.sh``: factor 1 and observer conv3 (CIFAR), conv4 (Tiny-ImageNet); factor 2 and ResNet-18
        on ImageNet; mipc 300 and 5 crops everywhere (the option defaults)."""
        return {"factor": 1 if spec.image_size <= 64 else 2, "teacher_arch": default_teacher_arch(spec)}

    def distill_unit(self, unit, ctx):
        import torch
        (label,) = set(unit.labels)
        ipc, size, generator = len(unit.slots), ctx.spec.image_size, ctx.generator(unit)
        factor = self.options.factor
        pool = ctx.train.indices_of(label)
        pick = pool[torch.randperm(len(pool), generator=generator)[: self.options.mipc]]
        if len(pick) < ipc * factor ** 2:
            raise UsageError(f"RDED needs at least IPC*factor^2 = {ipc * factor ** 2} source images per class; "
                             f"raise --option mipc (now {len(pick)} available)")
        cell = size // factor
        crops = random_square_crops(ctx.train.originals(pick), self.options.num_crop, cell, generator)
        scores = self.score(crops / 255, label, size, ctx.device).view(len(pick), self.options.num_crop)
        check_finite(scores, f"teacher scores of class {label}'s crops", "check the teacher checkpoint")
        best_score, best_crop = scores.min(1)
        order = best_score.argsort()[: ipc * factor ** 2]
        chosen = crops.view(len(pick), self.options.num_crop, *crops.shape[1:])[order, best_crop[order]]
        return stitch(chosen, ipc, factor, size).round().clamp(0, 255).to(torch.uint8)

    def score(self, crops_unit, label: int, size: int, device):
        """Teacher cross-entropy of each crop, zero-padded (in normalised space) to the full size."""
        import torch
        import torch.nn.functional as F
        losses = []
        for chunk in crops_unit.split(self.options.batch_size):
            x = self.normalize(chunk.to(device))
            pad = size - x.shape[-1]
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
            with torch.inference_mode():
                logits = self.teacher(x)
            target = torch.full((len(x),), label, device=device)
            losses.append(F.cross_entropy(logits.float(), target, reduction="none").cpu())
        return torch.cat(losses)

    def notes(self, ipc: int) -> dict:
        return {"rded": {"deviations": "seeded crops; PNG output instead of JPEG"}}
