"""The distilled set on disk: an ImageFolder of PNGs plus ``manifest.json``.

Layout: ``<dir>/<NNN_classname>/<slot>.png`` with zero-padded class indices, so
that ``torchvision.datasets.ImageFolder``'s sorted folder order equals the
dataset's label order.  ``manifest.json`` is written last: a folder without it
is not a finished set.
"""
import io
import json
import re
from pathlib import Path

from distillbench.errors import UsageError

MANIFEST = "manifest.json"
FULL_METHOD = "full"  # the whole training split, evaluated as if it were a distilled set


def class_folder(label: int, name: str, num_classes: int) -> str:
    width = max(3, len(str(num_classes - 1)))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"
    return f"{label:0{width}d}_{safe}"


def png_bytes(image) -> bytes:
    """uint8 ``[C, H, W]`` tensor -> PNG bytes (deterministic for equal pixels)."""
    from PIL import Image
    array = image.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(buffer, format="PNG")
    return buffer.getvalue()


class DistilledSet:
    """A finished distilled set (or any ImageFolder of images) on disk."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls, path) -> "DistilledSet":
        path = Path(path)
        manifest_file = path / MANIFEST
        if not manifest_file.is_file():
            raise UsageError(f"{path} is not a finished distilled set (no {MANIFEST}); "
                             "rerun the same `distillbench run` command to resume it")
        return cls(path, json.loads(manifest_file.read_text()))

    @classmethod
    def from_imagefolder(cls, path, spec) -> "DistilledSet":
        """Any ImageFolder of images, with a minimal manifest (classes in sorted folder order): one
        non-empty folder per class of ``spec`` (a DatasetSpec), where its class count is known."""
        path = Path(path)
        classes = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
        if not classes:
            raise UsageError(f"{path} is neither a distilled set nor an ImageFolder with class folders")
        if spec.num_classes is not None and len(classes) != spec.num_classes:
            raise UsageError(f"{path} has {len(classes)} class folders but '{spec.name}' has {spec.num_classes} "
                             "classes; give it one folder per class, named so that they sort in the dataset's "
                             "class order")
        counts = [len(_images_in(path / c)) for c in classes]
        if 0 in counts:
            raise UsageError(f"class folder {path / classes[counts.index(0)]} has no images; every class needs at "
                             "least one")
        return cls(path, {"method": "imagefolder", "dataset": spec.name, "ipc": min(counts),
                          "class_folders": classes, "image_size": spec.image_size, "seed": None})

    @property
    def class_folders(self) -> list[str]:
        return self.manifest["class_folders"]

    def image_files(self):
        """(label, path) of every image, in label then file-name order."""
        for label, folder in enumerate(self.class_folders):
            for file in _images_in(self.path / folder):
                yield label, file

    def load(self):
        """(uint8 images ``[N, 3, S, S]``, long labels ``[N]``) with S the manifest's image size."""
        import torch
        from distillbench.datasets import read_image
        size = self.manifest["image_size"]
        labels, images = zip(*[(label, read_image(file, size)) for label, file in self.image_files()])
        return torch.stack(images), torch.tensor(labels)

    def checksum(self) -> str:
        import hashlib
        digest = hashlib.sha256()
        for label, file in self.image_files():
            digest.update(f"{label}/{file.name}".encode())
            digest.update(file.read_bytes())
        return "sha256:" + digest.hexdigest()


def _images_in(folder: Path) -> list[Path]:
    """The image files of a class folder, by name (hidden files left out)."""
    return [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")]


class FullTrainingSet:
    """The whole training split posing as a set: the full-data reference of DD-Ranking (method "full")."""

    path = None

    def __init__(self, spec, train):
        self.train = train
        self.manifest = {"method": FULL_METHOD, "dataset": spec.name, "ipc": 0, "image_size": spec.image_size,
                         "run_id": None, "images_checksum": train.fingerprint()}

    def load(self):
        import torch
        return self.train.load(torch.arange(len(self.train))), self.train.targets

    def checksum(self) -> str:
        return self.manifest["images_checksum"]
