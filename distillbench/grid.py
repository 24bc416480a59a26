"""A PNG grid of a distilled set: one row per class, each row named, the set named in a title."""
import io
from pathlib import Path

from distillbench import atomic
from distillbench.distilled import DistilledSet

PADDING = 2  # pixels between tiles (torchvision's make_grid)


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
    title, names = grid_labels(distilled.manifest)
    image = labelled(tile_grid(torch.stack(tiles), columns), title, [names[label] for label in sorted(rows)], size)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic.write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def grid_labels(manifest: dict) -> tuple[str, list[str]]:
    """The grid's title (method, dataset, IPC, seed: those the manifest knows) and each class's name."""
    facts = [manifest.get("method"), manifest.get("dataset"),
             f"IPC {manifest['ipc']}" if manifest.get("ipc") else None,
             f"seed {manifest['seed']}" if manifest.get("seed") is not None else None]
    names = manifest.get("class_names") or manifest["class_folders"]
    return " · ".join(str(fact) for fact in facts if fact), [str(name) for name in names]


def labelled(grid, title: str, row_names: list[str], size: int):
    """The uint8 tile grid ``[3, H, W]`` as a PIL image with each row's name on its left and a title above;
    tiles under 64 px are enlarged (nearest) so that one can see them."""
    from PIL import Image, ImageDraw, ImageFont
    scale = max(1, 64 // size)
    tiles = Image.fromarray(grid.permute(1, 2, 0).numpy())
    tiles = tiles.resize((tiles.width * scale, tiles.height * scale), Image.NEAREST)
    font = ImageFont.load_default(size=max(12, min(28, size * scale // 5)))
    measure = ImageDraw.Draw(tiles)
    margin = int(max(measure.textlength(name, font=font) for name in row_names)) + 12
    band = int(font.size * 2.2)
    canvas = Image.new("RGB", (margin + tiles.width, band + tiles.height), "white")
    canvas.paste(tiles, (margin, band))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, band // 2), title, fill="black", font=font, anchor="lm")
    pitch = (size + PADDING) * scale
    for row, name in enumerate(row_names):
        draw.text((margin - 6, band + PADDING * scale + row * pitch + size * scale // 2), name, fill="black",
                  font=font, anchor="rm")
    return canvas


def tile_grid(images, columns: int):
    """uint8 images ``[n, 3, s, s]`` -> one uint8 image, ``columns`` per row, white gaps."""
    from torchvision.utils import make_grid
    return make_grid(images, nrow=columns, padding=PADDING, pad_value=255)
