"""A PNG grid of a distilled set: one row per class."""
from pathlib import Path

from distillbench import atomic
from distillbench.distilled import DistilledSet, png_bytes


def write_grid(distilled: DistilledSet, path: Path, per_class: int = 10, max_classes: int = 100) -> Path:
    import torch
    from torchvision.utils import make_grid
    from distillbench.datasets import read_image
    rows: dict[int, list] = {}
    size = distilled.manifest["image_size"]
    for label, file in distilled.image_files():
        if label < max_classes and len(rows.setdefault(label, [])) < per_class:
            rows[label].append(read_image(file, size))
    columns = max(len(r) for r in rows.values())
    blank = torch.zeros(3, size, size, dtype=torch.uint8)
    tiles = [img for label in sorted(rows) for img in rows[label] + [blank] * (columns - len(rows[label]))]
    grid = make_grid(torch.stack(tiles), nrow=columns, padding=2, pad_value=255)
    atomic.write_bytes(Path(path), png_bytes(grid))
    return Path(path)
