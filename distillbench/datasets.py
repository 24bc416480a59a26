"""Datasets: the registry entry (:class:`DatasetSpec`) and the image sets it loads.

Every loader presents its images as uint8 tensors ``[n, C, H, W]`` at the
spec's ``image_size`` and ``channels``; normalisation is the spec's business
and is applied by whoever trains on the images.
"""
import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from distillbench.errors import UsageError
from distillbench.images import available_cores, chunked, ordered_map, parallel_map, rebatched


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
    """How datasets are read: the CLI's --data-dir, --download, --skip-bad-images and --workers."""

    data_dir: Optional[Path] = None
    download: bool = False
    skip_bad_images: bool = False
    workers: Optional[int] = None  # processes decoding image files; None: the cores available

    def load(self, spec: DatasetSpec, split: str, device: str = "cpu") -> "ImageSet":
        """The split's images; on a CUDA ``device`` its JPEG files are decoded there.  With ``skip_bad_images``,
        files that cannot be decoded are left out (and listed in the set's ``skipped``) instead of stopping the
        run when they are reached."""
        images = spec.load(split, self.data_dir, self.download)
        if self.workers:
            images = images.with_workers(self.workers)
        if device.startswith("cuda"):
            images = images.decoding_jpeg_on(device)
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

    def originals(self, indices) -> list:
        """The images at ``indices`` at their own resolution, uint8 ``[C, H, W]`` each (RDED crops these)."""
        return list(self.load(indices))

    def batches(self, indices=None, batch_size: int = 256):
        """uint8 batches of the images at ``indices`` (default: all), in order, read as they are consumed."""
        import torch
        indices = torch.arange(len(self)) if indices is None else torch.as_tensor(indices)
        for chunk in indices.split(batch_size):
            yield self.load(chunk)

    jpeg_device = None  # where a file-backed set's JPEGs are decoded in batches (None: in the worker processes)
    decoder = "in memory"  # how the images are read, for the manifest

    def with_workers(self, workers: int) -> "ImageSet":
        """This set, its files decoded by ``workers`` processes (in-memory sets have none to decode)."""
        return self

    def decoding_jpeg_on(self, device: str) -> "ImageSet":
        """This set, its JPEG files decoded by torchvision on ``device`` (nvjpeg on CUDA)."""
        return self

    def resident(self, limit_bytes: int) -> "ImageSet":
        """This set held in memory when its decoded images fit in ``limit_bytes`` (a test split read every few
        epochs), else itself, to be streamed.  In-memory sets already are."""
        return self

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


DECODED_TOGETHER = 64  # images a decoding worker stacks per task; larger batches are joined from these


class FileImageSet(ImageSet):
    """Images read from files on demand (ImageFolder, Tiny-ImageNet, ImageNet), decoded by ``workers`` processes
    (:mod:`distillbench.images`)."""

    def __init__(self, paths, targets, class_names, image_size: int, root: Path, skipped=(), resize=None,
                 dataset_size=None, workers=None):
        super().__init__(targets, class_names, skipped)
        self.paths = [Path(p) for p in paths]
        self.image_size = image_size
        self.resize = resize or image_size  # the shorter side before the centre crop of image_size, or (h, w)
        self.dataset_size = dataset_size or image_size  # the dataset's own size (a view may read another)
        self.root = root
        self.workers = workers or available_cores()

    @property
    def decoder(self) -> str:
        where = f"batched on {self.jpeg_device}" if self.jpeg_device else "in worker processes"
        return f"JPEG by torchvision ({where}), other formats by PIL"

    def _view(self, **changes) -> "FileImageSet":
        """A copy with ``changes``; its fingerprint is recomputed only where they change the images."""
        view = copy.copy(self)
        view.__dict__.update(changes)
        if changes.keys() & {"paths", "targets", "image_size", "resize"}:
            view._fingerprint = None
        return view

    def read(self, index: int):
        return read_image(self.paths[index], self.image_size, self.resize)

    def original(self, index: int):
        return decode(self.paths[index])

    def readable(self, index: int) -> bool:
        return _decodes(self.paths[index])

    def load(self, indices):
        import torch
        return torch.cat(list(self.batches(indices, batch_size=DECODED_TOGETHER)))  # one copy, no re-batching

    def originals(self, indices) -> list:
        import torch
        return list(parallel_map(self.original, torch.as_tensor(indices).tolist(), self.workers))

    def batches(self, indices=None, batch_size: int = 256):
        import torch
        order = range(len(self)) if indices is None else torch.as_tensor(indices).tolist()
        if self.jpeg_device is not None:
            yield from self._batches_decoding_jpeg(order, batch_size)
            return
        pieces = parallel_map(self.read, order, self.workers, batch_size=min(batch_size, DECODED_TOGETHER))
        yield from pieces if batch_size <= DECODED_TOGETHER else rebatched(pieces, batch_size)

    def _batches_decoding_jpeg(self, order, batch_size: int):
        """Files read on the threads, JPEGs decoded a batch at a time by torchvision on ``jpeg_device`` (nvjpeg on
        CUDA) and resized there; other formats, and JPEGs it cannot decode, through PIL."""
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
        _quiet_torchvision_io()
        for chunk in chunked(ordered_map(lambda i: (i, read_file(str(self.paths[i]))), order, self.workers),
                             batch_size):
            images = [None] * len(chunk)
            jpegs = [k for k, (i, _) in enumerate(chunk) if self.paths[i].suffix.lower() in JPEG_SUFFIXES]
            try:
                decoded = decode_jpeg([chunk[k][1] for k in jpegs], mode=ImageReadMode.RGB, device=self.jpeg_device)
            except RuntimeError:  # one undecodable file fails the batch: PIL reads them one by one, and names it
                decoded = []
            for k, image in zip(jpegs, decoded):
                images[k] = fit(image, self.image_size, self.resize).cpu()
            yield torch.stack([image if image is not None else self.read(chunk[k][0])
                               for k, image in enumerate(images)])

    def decoding_jpeg_on(self, device: str) -> "FileImageSet":
        return self._view(jpeg_device=device)

    def resident(self, limit_bytes: int) -> ImageSet:
        import torch
        if len(self) * 3 * self.image_size ** 2 > limit_bytes:
            return self
        held = TensorImageSet(self.load(torch.arange(len(self))), self.targets, self.class_names)
        held._fingerprint = self.fingerprint()  # the same images: the identity of results stays the listing's
        held.skipped = self.skipped
        return held

    def with_workers(self, workers: int) -> "FileImageSet":
        return self._view(workers=workers)

    def compute_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path, target in zip(self.paths, self.targets.tolist()):
            digest.update(f"{path.relative_to(self.root)}\t{path.stat().st_size}\t{target}\n".encode())
        if (self.resize, self.image_size) != (self.dataset_size, self.dataset_size):
            digest.update(f"resize {self.resize}, centre crop {self.image_size}".encode())
        return "sha256-listing:" + digest.hexdigest()

    def at_size(self, size: int, squash: bool = False) -> "FileImageSet":
        return self._view(image_size=size, resize=(size, size) if squash else size)

    def test_view(self) -> "FileImageSet":
        return self._view(resize=test_resize(self.image_size))

    def without_unreadable(self) -> "FileImageSet":
        """Decode every file once and drop those that fail; under torchrun each rank decodes its share and the
        verdicts are gathered, so every file is decoded once in all."""
        import sys

        from tqdm.auto import tqdm

        from distillbench import distributed
        mine = distributed.shard(list(range(len(self.paths))))
        checked = tqdm(parallel_map(self.readable, mine, self.workers), total=len(mine),
                       desc="checking images", leave=False, dynamic_ncols=True, disable=not distributed.is_main())
        verdicts = dict(pair for share in distributed.all_gather(list(zip(mine, checked))) for pair in share)
        bad = [str(p) for i, p in enumerate(self.paths) if not verdicts[i]]
        if bad and distributed.is_main():
            print(f"Warning: skipped {len(bad)} unreadable image(s) of {len(self.paths)}, e.g. {bad[0]}",
                  file=sys.stderr)
        keep = [i for i in range(len(self.paths)) if verdicts[i]]
        kept = self._view(paths=[self.paths[i] for i in keep], targets=self.targets[keep],
                          skipped=self.skipped + bad)
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


JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_image(path: Path, size: int, resize_to=None):
    """One RGB image file as uint8 ``[3, size, size]`` (see :func:`fit`)."""
    return fit(decode(path), size, resize_to)


def decode(path: Path):
    """An image file as uint8 RGB ``[3, H, W]``.  JPEGs go through torchvision's libjpeg-turbo decoder, which
    gives PIL's pixels faster and outside the GIL; other formats, and JPEGs it refuses (CMYK, damaged), through
    PIL, which names a file it cannot read either."""
    from torchvision.transforms.functional import pil_to_tensor
    if path.suffix.lower() in JPEG_SUFFIXES:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
        _quiet_torchvision_io()
        try:
            return decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)
        except RuntimeError:
            pass
    return pil_to_tensor(_open_rgb(path))


def _quiet_torchvision_io() -> None:
    """torchvision 0.29 (the newest pip may install here) deprecates its decoders for TorchCodec; they work."""
    import warnings
    warnings.filterwarnings("ignore", "The image decoding and encoding capabilities of TorchVision",
                            DeprecationWarning)


def fit(image, size: int, resize_to=None):
    """uint8 ``[3, H, W]`` -> ``[3, size, size]``: shorter side resized to ``resize_to`` (default ``size``; a pair
    (h, w) resizes to exactly that), antialiased, then centre-cropped."""
    from torchvision.transforms.functional import center_crop, resize
    return center_crop(resize(image, resize_to or size, antialias=True), size)


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
