"""A PNG grid of a distilled set: one row per class."""
from pathlib import Path

from distillbench import atomic
from distillbench.distilled import DistilledSet, png_bytes


def write_grid(distilled: DistilledSet, path: Path, per_class: int = 10, max_classes: int = 100) -> Path:
    import torch

    from distillbench.datasets import read_image
    rows: dict[int, list] = {}
    size = distilled.manifest["image_size"]
    for label, file in distilled.image_files():
        if label < max_classes and len(rows.setdefault(label, [])) < per_class:
            rows[label].append(read_image(file, size))
    columns = max(len(r) for r in rows.values())
    blank = torch.zeros(3, size, size, dtype=torch.uint8)
    tiles = [img for label in sorted(rows) for img in rows[label] + [blank] * (columns - len(rows[label]))]
    atomic.write_bytes(Path(path), png_bytes(tile_grid(torch.stack(tiles), columns)))
    return Path(path)


def tile_grid(images, columns: int):
    """uint8 images ``[n, 3, s, s]`` -> one uint8 image, ``columns`` per row, white gaps."""
    from torchvision.utils import make_grid
    return make_grid(images, nrow=columns, padding=2, pad_value=255)
