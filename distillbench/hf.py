"""Distilled sets as Hugging Face ``datasets``, out and in.

Out (``distillbench export RUN --format hf --out DIR``): one row per image, ``image`` (the set's PNG bytes as
they are), ``label`` (a ClassLabel of the dataset's class names), ``file`` (its path in the set), and a
``soft_labels_KEY`` column per soft-label file the ``stored-labels`` protocol left beside the set; the run's
manifest is the dataset's description (JSON).  ``save_to_disk`` layout, ready for ``push_to_hub``.

In (``hf:PATH_OR_HUB_ID`` wherever a set is expected, e.g. ``distillbench evaluate hf:DIR --dataset cifar10``):
a folder ``save_to_disk`` wrote, or a Hub dataset read through the library's cache (``HF_HUB_OFFLINE`` honoured),
becomes a set folder under ``ROOT/imports/``, its images written back byte for byte where they are PNG bytes,
so that a set exported here evaluates to the same identities as the original.
"""
import functools
import json
import shutil
from pathlib import Path

from distillbench import atomic
from distillbench.distilled import MANIFEST, DistilledSet, class_folder
from distillbench.errors import UsageError

PREFIX = "hf:"


def export(distilled: DistilledSet, out: Path) -> Path:
    """Write ``distilled`` to ``out`` as a ``datasets`` dataset (``save_to_disk``); ``out``."""
    import datasets
    from safetensors.torch import load_file
    files = list(distilled.image_files())
    names = distilled.manifest.get("class_names") or distilled.class_folders
    columns = {"image": [{"bytes": file.read_bytes(), "path": file.name} for _, file in files],
               "label": [label for label, _ in files],
               "file": [file.relative_to(distilled.path).as_posix() for _, file in files]}
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names)),
                "file": datasets.Value("string")}
    for stored in sorted(distilled.path.glob("soft_labels-*.safetensors")):
        key = stored.stem.removeprefix("soft_labels-")
        columns[f"soft_labels_{key}"] = load_file(stored)["probs"].tolist()
        features[f"soft_labels_{key}"] = datasets.Sequence(datasets.Value("float32"))
    features = datasets.Features(features)
    info = datasets.DatasetInfo(description=json.dumps({"distillbench_manifest": distilled.manifest}),
                                features=features)
    table = datasets.Dataset.from_dict(columns, features=features, info=info)
    table.save_to_disk(str(out))
    return Path(out)


def load(source: str, split: str = "train"):
    """The ``split`` of the ``datasets`` dataset that ``hf:PATH_OR_HUB_ID`` names: a folder ``save_to_disk``
    wrote (a DatasetDict, or one Dataset, which is only ever the train split), else a Hub dataset from the
    Hugging Face cache."""
    import datasets
    name = source.removeprefix(PREFIX)
    if Path(name).is_dir():
        saved = datasets.load_from_disk(name)
        if isinstance(saved, datasets.DatasetDict):
            if split not in saved:
                raise UsageError(f"'{source}': no split '{split}' (it has {', '.join(saved)}); name the test split "
                                 "with ?test=SPLIT")
            return saved[split]
        if split != "train":
            raise UsageError(f"'{source}': the folder holds one split; save a DatasetDict with train and {split} "
                             "splits (the test split is never the training images)")
        return saved
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as error:  # the library's own errors: not found, offline and not cached, no such split
        raise UsageError(f"'{source}': no dataset folder there and no Hub dataset '{name}' in the Hugging Face "
                         f"cache ({type(error).__name__}); save one with `distillbench export` or fetch it "
                         "online once") from None


def import_set(source: str, root: Path, spec=None) -> DistilledSet:
    """The set that ``hf:...`` names, as a set folder under ``root/imports/`` (written once per dataset
    fingerprint); ``spec`` (a DatasetSpec, or None) names the dataset where the set's metadata does not."""
    table = load(source)
    if "image" not in table.column_names or "label" not in table.column_names:
        raise UsageError(f"'{source}' has columns {table.column_names}; a set needs 'image' and 'label'")
    manifest = _manifest(table, source, spec)
    folder = Path(root) / "imports" / table._fingerprint
    if not (folder / MANIFEST).is_file():
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for row, file in zip(_encoded_images(table), _files(table, manifest)):
            path = staging / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(row)
        atomic.write_json(staging / MANIFEST, manifest)
        staging.rename(folder)
    return DistilledSet.open(folder)


def _manifest(table, source: str, spec) -> dict:
    """The exported manifest, or a minimal one for a set made elsewhere."""
    try:
        return json.loads(table.info.description or "{}")["distillbench_manifest"]
    except (json.JSONDecodeError, KeyError, TypeError):
        if spec is None:
            raise UsageError(f"'{source}' carries no distillbench manifest; say which dataset it distills with "
                             "--dataset") from None
        names = getattr(table.features["label"], "names", None) or [str(c) for c in range(spec.num_classes)]
        counts = [0] * len(names)
        for label in table["label"]:
            counts[label] += 1
        return {"method": source, "dataset": spec.name, "ipc": min(counts), "image_size": spec.image_size,
                "class_names": names, "class_folders": [class_folder(c, n, len(names)) for c, n in enumerate(names)],
                "seed": None}


def _files(table, manifest: dict) -> list:
    """Each row's path in the set: the exported one, else ``CLASS_FOLDER/NNNNN.png``."""
    if "file" in table.column_names:
        return table["file"]
    folders = manifest["class_folders"]
    return [f"{folders[label]}/{index:05d}.png" for index, label in enumerate(table["label"])]


def _encoded_images(table):
    """Each row's image file bytes: as stored where they are PNG, else the decoded image encoded as PNG."""
    import io
    raw = table.cast_column("image", type(table.features["image"])(decode=False))["image"]
    for image in raw:
        data = image.get("bytes") if isinstance(image, dict) else None
        if data is not None and data[:8] == b"\x89PNG\r\n\x1a\n":
            yield data
            continue
        from PIL import Image
        with Image.open(io.BytesIO(data) if data is not None else image["path"]) as decoded:
            buffer = io.BytesIO()
            decoded.convert("RGB").save(buffer, format="PNG")
            yield buffer.getvalue()


class HubDatasets:
    """The ``hf:`` dataset family: ``--dataset hf:NAME_OR_PATH[?image=COLUMN&label=COLUMN&size=PX&test=SPLIT]``
    trains and distils from a Hugging Face image-classification dataset (a Hub id read through the library's
    cache, or a folder ``save_to_disk`` wrote), its images held in memory at ``size`` px (default 32: the
    shorter side resized, then centre-cropped), its normalisation measured on its train split."""

    name = PREFIX
    description = ("a Hugging Face image-classification dataset: hf:NAME_OR_PATH[?image=COL&label=COL&size=PX"
                   "&test=SPLIT] (default columns image and label, 32 px, test split 'test')")

    def member(self, name: str):
        return _member(name)


@functools.lru_cache(maxsize=None)
def _member(name: str):
    from distillbench.datasets import DatasetSpec
    options = _dataset_options(name)
    train = _split(name, "train")
    images = train.images.float() / 255
    return DatasetSpec(name, f"Hugging Face dataset {options['source']}", train.num_classes, options["size"],
                       tuple(images.mean((0, 2, 3)).tolist()), tuple(images.std((0, 2, 3)).tolist()),
                       lambda data_dir, split, download: _split(name, split))


def _dataset_options(name: str) -> dict:
    from urllib.parse import parse_qs
    source, _, query = name.removeprefix(PREFIX).partition("?")
    given = {key: values[-1] for key, values in parse_qs(query).items()}
    unknown = sorted(set(given) - {"image", "label", "size", "test"})
    if unknown or not source or not given.get("size", "32").isdigit():
        raise UsageError(f"--dataset {name}: expected hf:NAME_OR_PATH[?image=COL&label=COL&size=PX&test=SPLIT]"
                         + (f"; unknown key '{unknown[0]}'" if unknown else ""))
    return {"source": source, "image": given.get("image", "image"), "label": given.get("label", "label"),
            "size": int(given.get("size", 32)), "test": given.get("test", "test")}


@functools.lru_cache(maxsize=None)
def _split(name: str, split: str):
    """The split's images as a TensorImageSet, decoded once and cached (keyed by the split's fingerprint)."""
    import torch

    from distillbench import paths
    from distillbench.datasets import TensorImageSet
    options = _dataset_options(name)
    table = load(f"{PREFIX}{options['source']}", "train" if split == "train" else options["test"])
    for column in (options["image"], options["label"]):
        if column not in table.column_names:
            raise UsageError(f"--dataset {name}: no column '{column}' (it has {', '.join(table.column_names)}); "
                             "name the image and label columns with ?image=COL&label=COL")
    cached = paths.cache_dir() / "datasets" / f"{paths.file_name(name)}-{split}-{table._fingerprint}.pt"
    if not cached.is_file():
        labels = torch.tensor(table[options["label"]])
        names = (getattr(table.features[options["label"]], "names", None)
                 or [str(c) for c in range(int(labels.max()) + 1)])
        images = torch.stack([_pixels(image, options["size"]) for image in table[options["image"]]])
        atomic.write_torch(cached, {"images": images, "labels": labels, "names": names})
    stored = torch.load(cached, weights_only=True)
    return TensorImageSet(stored["images"], stored["labels"], stored["names"])


def _pixels(image, size: int):
    """A PIL image as uint8 [3, size, size]: the shorter side resized to ``size``, centre-cropped."""
    import torch
    from torchvision.transforms.functional import center_crop, pil_to_tensor, resize
    return center_crop(resize(pil_to_tensor(image.convert("RGB")), size, antialias=True), size).to(torch.uint8)
