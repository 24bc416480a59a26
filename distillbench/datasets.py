"""Datasets: the registry entry (:class:`DatasetSpec`) and the image sets it loads.

Every loader presents its images as uint8 tensors ``[n, C, H, W]`` at the
spec's ``image_size`` and ``channels``; normalisation is the spec's business
and is applied by whoever trains on the images.
"""
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from distillbench.errors import UsageError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    num_classes: Optional[int]  # None: read from the data (imagefolder)
    image_size: int
    mean: tuple
    std: tuple
    # loader(data_dir: Path, split: "train"|"test", download: bool) -> ImageSet
    loader: Callable = field(repr=False, compare=False)
    channels: int = 3
    needs_data_dir: bool = False
    mirror_invariant: bool = True  # False where a horizontal flip changes the class (digits)

    def load(self, split: str, data_dir=None, download: bool = False) -> "ImageSet":
        if self.needs_data_dir and data_dir is None:
            raise UsageError(f"dataset '{self.name}' is read from disk; pass --data-dir DIR (or set DISTILLBENCH_DATA)")
        return self.loader(Path(data_dir) if data_dir is not None else None, split, download)


@dataclass(frozen=True)
class DataSource:
    """How datasets are read: the CLI's --data-dir, --download and --skip-bad-images."""

    data_dir: Optional[Path] = None
    download: bool = False
    skip_bad_images: bool = False

    def load(self, spec: DatasetSpec, split: str) -> "ImageSet":
        """The split's images; with ``skip_bad_images``, files that cannot be decoded are left out (and
        listed in the set's ``skipped``) instead of stopping the run when they are reached."""
        images = spec.load(split, self.data_dir, self.download)
        return images.without_unreadable() if self.skip_bad_images else images


class ImageSet:
    """Labelled images of one split.  Subclasses implement ``load`` and ``compute_fingerprint``."""

    def __init__(self, targets, class_names, skipped=()):
        import torch
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.class_names = list(class_names)
        self.skipped = list(skipped)  # files left out because they could not be decoded
        self._fingerprint = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.targets)

    def indices_of(self, label: int):
        import torch
        return torch.nonzero(self.targets == label).flatten()

    def class_counts(self) -> list[int]:
        import torch
        return torch.bincount(self.targets, minlength=self.num_classes).tolist()

    def load(self, indices):
        """uint8 images ``[len(indices), C, H, W]``."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A checksum that identifies the input data, stored with every result.  Computed once per set: the
        run id, a method's caches and the manifest all ask for it, and for a folder of a million images
        it costs a stat of every file."""
        if self._fingerprint is None:
            self._fingerprint = self.compute_fingerprint()
        return self._fingerprint

    def compute_fingerprint(self) -> str:
        raise NotImplementedError

    def without_unreadable(self) -> "ImageSet":
        """This set less the images that cannot be decoded (in-memory sets have none)."""
        return self

    def at_size(self, size: int, squash: bool = False) -> "ImageSet":
        """The split as a method that works at another resolution reads it from the originals: the shorter side
        resized to ``size`` and centre-cropped (D3HR's 256 px encoding), or with ``squash`` the whole image
        resized to ``size`` x ``size`` (D4M's ``Resize((512, 512))``).  In-memory sets are their originals:
        they stay as they are, and the method resizes their images itself."""
        return self

    def test_view(self) -> "ImageSet":
        """The split as the field's test transform sees it (RDED, D3HR and SRe2L alike): the original images
        resized to ``test_resize(size)`` on their shorter side, then centre-cropped to ``size``."""
        return self


class TensorImageSet(ImageSet):
    """Images held in memory as one uint8 tensor (embedded datasets, MNIST, CIFAR)."""

    def __init__(self, images, targets, class_names):
        super().__init__(targets, class_names)
        self.images = images

    def load(self, indices):
        return self.images[indices]

    def test_view(self) -> "TensorImageSet":
        size = self.images.shape[-1]
        if test_resize(size) == size:
            return self
        from torchvision.transforms.functional import center_crop, resize
        return TensorImageSet(center_crop(resize(self.images, test_resize(size), antialias=True), size), self.targets,
                              self.class_names)

    def compute_fingerprint(self) -> str:
        digest = hashlib.sha256(self.images.contiguous().numpy().tobytes())
        digest.update(self.targets.numpy().tobytes())
        return "sha256:" + digest.hexdigest()


class FileImageSet(ImageSet):
    """Images read from files on demand (ImageFolder, Tiny-ImageNet, ImageNet)."""

    def __init__(self, paths, targets, class_names, image_size: int, root: Path, skipped=(), resize=None,
                 dataset_size=None):
        super().__init__(targets, class_names, skipped)
        self.paths = [Path(p) for p in paths]
        self.image_size = image_size
        self.resize = resize or image_size  # the shorter side before the centre crop of image_size, or (h, w)
        self.dataset_size = dataset_size or image_size  # the dataset's own size (a view may read another)
        self.root = root

    def load(self, indices):
        import torch
        return torch.stack([read_image(self.paths[i], self.image_size, self.resize) for i in indices.tolist()])

    def compute_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path, target in zip(self.paths, self.targets.tolist()):
            digest.update(f"{path.relative_to(self.root)}\t{path.stat().st_size}\t{target}\n".encode())
        if (self.resize, self.image_size) != (self.dataset_size, self.dataset_size):
            digest.update(f"resize {self.resize}, centre crop {self.image_size}".encode())
        return "sha256-listing:" + digest.hexdigest()

    def at_size(self, size: int, squash: bool = False) -> "FileImageSet":
        return FileImageSet(self.paths, self.targets, self.class_names, size, self.root, self.skipped,
                            (size, size) if squash else size, self.dataset_size)

    def test_view(self) -> "FileImageSet":
        return FileImageSet(self.paths, self.targets, self.class_names, self.image_size, self.root, self.skipped,
                            test_resize(self.image_size), self.dataset_size)

    def without_unreadable(self) -> "FileImageSet":
        """Decode every file once (threads: PIL decodes outside the GIL) and drop those that fail."""
        import os
        import sys
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            readable = list(tqdm(pool.map(_decodes, self.paths), total=len(self.paths), desc="checking images",
                                 leave=False, dynamic_ncols=True))
        bad = [str(p) for p, ok in zip(self.paths, readable) if not ok]
        if bad:
            print(f"Warning: skipped {len(bad)} unreadable image(s) of {len(self.paths)}, e.g. {bad[0]}",
                  file=sys.stderr)
        keep = [i for i, ok in enumerate(readable) if ok]
        kept = FileImageSet([self.paths[i] for i in keep], self.targets[keep], self.class_names, self.image_size,
                            self.root, self.skipped + bad, self.resize, self.dataset_size)
        counts = kept.class_counts()
        if 0 in counts:
            name = self.class_names[counts.index(0)]
            raise UsageError(f"class '{name}' has no readable images left after skipping the unreadable ones; "
                             "repair its files or remove the class folder")
        return kept


def _decodes(path: Path) -> bool:
    try:
        _open_rgb(path)
        return True
    except UsageError:
        return False


def _open_rgb(path: Path):
    from PIL import Image
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... on damaged files
        raise UsageError(f"cannot read image {path}: {exc}; remove or replace the file, "
                         "or pass --skip-bad-images") from None


def read_image(path: Path, size: int, resize_to=None):
    """One RGB image as uint8 ``[3, size, size]``: shorter side resized to ``resize_to`` (default ``size``; a pair
    (h, w) resizes to exactly that), centre crop."""
    from torchvision.transforms.functional import center_crop, pil_to_tensor, resize
    return center_crop(resize(pil_to_tensor(_open_rgb(path)), resize_to or size, antialias=True), size)


def test_resize(size: int) -> int:
    """The shorter side of the field's test transform before its centre crop of ``size``: 256 for 224, 72 for 64,
    32 for 32 (RDED ``validation/main.py``; D3HR ``validation/utils/data_utils.py`` L276-303)."""
    return size // 7 * 8


def to_rgb_uint8(images, size: int):
    """Grey or RGB uint8 ``[n, (C,) h, w]`` -> uint8 ``[n, 3, size, size]`` (bilinear, antialiased)."""
    import torch
    import torch.nn.functional as F
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.shape[-1] != size:
        images = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        images = images.round().clamp(0, 255).to(torch.uint8)
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images.contiguous()
