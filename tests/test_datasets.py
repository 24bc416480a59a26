"""Each loader on small files written in the real on-disk format, and the embedded splits."""
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from distillbench.errors import UsageError
from distillbench.plugins import registry


def load(name, split, data_dir=None):
    return registry("dataset").get(name).load(split, data_dir)


@pytest.mark.parametrize("name,train_per_class", [("digits", None), ("mnist5k", 400)])
def test_embedded_split_is_stratified_disjoint_and_fixed(name, train_per_class):
    train, test = load(name, "train"), load(name, "test")
    assert train.load(torch.arange(4)).shape == (4, 3, 32, 32) and train.load(torch.arange(1)).dtype == torch.uint8
    counts = train.class_counts()
    if train_per_class:
        assert counts == [train_per_class] * 10 and test.class_counts() == [100] * 10
    ratio = np.array(counts) / (np.array(counts) + np.array(test.class_counts()))
    assert np.allclose(ratio, 0.8, atol=0.02)
    train_rows = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in test.images[:200])
    assert load(name, "train").fingerprint() == train.fingerprint()


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_embedded_splits_are_parsed_once_and_the_cached_copy_is_the_same(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path))
    parsed = load(name, "test")
    (cached_file,) = (tmp_path / "datasets").glob(f"{name}-test-*.pt")
    monkeypatch.setattr("sklearn.model_selection.train_test_split", lambda *a, **k: pytest.fail("split again"))
    cached = load(name, "test")
    assert torch.equal(cached.images, parsed.images) and torch.equal(cached.targets, parsed.targets)
    assert cached.fingerprint() == parsed.fingerprint() and cached.class_names == parsed.class_names


def _idx(path, magic, array):
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes())


def test_mnist_reads_torchvision_raw_format(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255
    labels = np.arange(20, dtype=np.uint8) % 10
    for prefix in ("train", "t10k"):
        _idx(raw / f"{prefix}-images-idx3-ubyte", 2051, images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", 2049, labels)
    train = load("mnist", "train", tmp_path)
    x = train.load(torch.arange(20))
    assert x.shape == (20, 3, 32, 32) and train.targets.tolist() == labels.tolist()
    assert x[:, :, 0, 0].max() == 0 and x[:, :, 16, 16].min() == 255
    assert torch.equal(x[:, 0], x[:, 2])


def _write_cifar(folder, files, label_key, meta_file, names_key, names):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for file in files:
        labels = [i % len(names) for i in range(2 * len(names))]
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        with open(folder / file, "wb") as f:
            pickle.dump({"data": data, label_key: labels}, f)
    with open(folder / meta_file, "wb") as f:
        pickle.dump({names_key: names}, f)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_torchvision_pickle_format(tmp_path, monkeypatch, name):
    import os

    import torchvision.datasets.cifar
    # Test files cannot match the official archives' md5 sums, which torchvision checks: check presence only.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    if name == "cifar10":
        names = [f"c{i}" for i in range(10)]
        _write_cifar(tmp_path / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
                     "labels", "batches.meta", "label_names", names)
    else:
        names = [f"c{i}" for i in range(100)]
        _write_cifar(tmp_path / "cifar-100-python", ["train", "test"], "fine_labels", "meta", "fine_label_names", names)
    train = load(name, "train", tmp_path)
    assert train.class_names == names and min(train.class_counts()) >= 2
    x = train.load(torch.arange(3))
    assert x.shape == (3, 3, 32, 32)
    with open(next(p for p in sorted(tmp_path.rglob("*")) if p.name in ("data_batch_1", "train")), "rb") as f:
        first = pickle.load(f)["data"][0].reshape(3, 32, 32)
    assert torch.equal(x[0], torch.from_numpy(first))


def _jpeg(path, value, size=(70, 80)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)


def test_tinyimagenet_layout(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    for i, wnid in enumerate(wnids):
        for k in range(3):
            _jpeg(root / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 50 * (i + 1))
    rows = []
    for k, wnid in enumerate(["n01", "n02", "n01"]):
        _jpeg(root / "val" / "images" / f"val_{k}.JPEG", 10)
        rows.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t10\t10")
    (root / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    train, val = load("tinyimagenet", "train", tmp_path), load("tinyimagenet", "test", tmp_path)
    assert train.class_names == ["n01", "n02"] and train.class_counts() == [3, 3]
    assert val.targets.tolist() == [0, 1, 0]
    x = train.load(torch.tensor([0, 5]))
    assert x.shape == (2, 3, 64, 64)
    assert abs(int(x[0].float().mean()) - 100) <= 2  # n01 was written with grey level 100


@pytest.mark.parametrize("name,subdir,size", [("imagenet", "imagenet", 224), ("imagefolder", ".", 64)])
def test_imagefolder_layouts(tmp_path, name, subdir, size):
    root = tmp_path / subdir
    for split in ("train", "val"):
        for cls in ("b_cls", "a_cls"):
            for k in range(2):
                _jpeg(root / split / cls / f"{k}.png", 200)
    train = load(name, "train", tmp_path)
    assert train.class_names == ["a_cls", "b_cls"]
    assert train.load(torch.tensor([0])).shape == (1, 3, size, size)
    fingerprint = train.fingerprint()
    assert fingerprint.startswith("sha256-listing:")
    _jpeg(root / "train" / "a_cls" / "0.png", 200, size=(90, 90))  # another file size: a fresh listing differs
    assert train.fingerprint() == fingerprint  # computed once per set (it stats every file)
    assert load(name, "train", tmp_path).fingerprint() != fingerprint


def test_unreadable_image_names_the_file(tmp_path):
    for split in ("train", "val"):
        _jpeg(tmp_path / split / "a" / "ok.png", 1)
    bad = tmp_path / "train" / "a" / "broken.png"
    bad.write_bytes(b"not an image")
    train = load("imagefolder", "train", tmp_path)
    with pytest.raises(UsageError, match="broken.png"):
        train.load(torch.arange(2))


def test_missing_tinyimagenet_says_where_and_how(tmp_path):
    with pytest.raises(UsageError, match=r"tiny-imagenet-200.*unzip"):
        load("tinyimagenet", "train", tmp_path)


def test_the_test_view_resizes_the_original_then_centre_crops(tmp_path):
    """Resize(size // 7 * 8) then CenterCrop(size), of the original file: 72 then 64 here, as 256 then 224 on
    ImageNet; never an upsampling of the training-size image."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import center_crop, pil_to_tensor, resize

    from distillbench.datasets import FileImageSet, TensorImageSet
    small = TensorImageSet(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), [0, 1], ["a", "b"])
    assert small.test_view() is small  # 32 // 7 * 8 == 32
    pixels = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp_path / "a.png")
    files = FileImageSet([tmp_path / "a.png"], [0], ["a"], 64, tmp_path)
    viewed = files.test_view()
    expected = center_crop(resize(pil_to_tensor(Image.open(tmp_path / "a.png")), 72, antialias=True), 64)
    assert torch.equal(viewed.load(torch.arange(1))[0], expected)
    assert not torch.equal(files.load(torch.arange(1))[0], expected)
    assert viewed.fingerprint() != files.fingerprint()
    big = TensorImageSet(viewed.load(torch.arange(1)).repeat(2, 1, 1, 1), [0, 1], ["a", "b"])
    assert big.test_view().load(torch.arange(2)).shape == (2, 3, 64, 64)


def test_a_method_reads_the_originals_at_its_own_size(tmp_path):
    """D3HR encodes Resize(256) + CenterCrop(256) of the original and D4M Resize((512, 512)): never an upsampling
    of the 224 px training view.  In-memory sets are their own originals."""
    from PIL import Image
    from torchvision.transforms.functional import center_crop, pil_to_tensor, resize

    from distillbench.datasets import FileImageSet, TensorImageSet
    small = TensorImageSet(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), [0, 1], ["a", "b"])
    assert small.at_size(256) is small
    pixels = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp_path / "a.png")
    files = FileImageSet([tmp_path / "a.png"], [0], ["a"], 16, tmp_path)
    original = pil_to_tensor(Image.open(tmp_path / "a.png"))
    cropped, squashed = files.at_size(48), files.at_size(48, squash=True)
    assert torch.equal(cropped.load(torch.arange(1))[0], center_crop(resize(original, 48, antialias=True), 48))
    assert torch.equal(squashed.load(torch.arange(1))[0], resize(original, [48, 48], antialias=True))
    assert len({files.fingerprint(), cropped.fingerprint(), squashed.fingerprint()}) == 3


def _folder_of(tmp_path, sizes):
    from PIL import Image

    from distillbench.datasets import FileImageSet
    paths = []
    for k, (width, height) in enumerate(sizes):
        pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(k))
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(pixels.numpy()).save(paths[-1])
    return FileImageSet(paths, [k % 2 for k in range(len(paths))], ["a", "b"], 16, tmp_path)


def test_files_decode_in_worker_processes_in_order_streamed_or_held(tmp_path):
    files = _folder_of(tmp_path, [(40 + k, 30 + 2 * k) for k in range(9)])
    order = torch.tensor([8, 0, 3, 3, 5])
    serial = files.with_workers(1).load(order)
    assert torch.equal(files.with_workers(4).load(order), serial)
    assert torch.equal(torch.cat(list(files.with_workers(3).batches(order, 2))), serial)
    assert [b.shape[0] for b in files.batches(order, 2)] == [2, 2, 1]
    assert [tuple(image.shape) for image in files.originals(torch.tensor([0, 8]))] == [(3, 30, 40), (3, 46, 48)]
    held = files.resident(10**6)
    assert torch.equal(held.load(torch.arange(9)), files.load(torch.arange(9)))
    assert held.fingerprint() == files.fingerprint() and files.resident(100) is files


def test_jpegs_decode_by_torchvision_to_pils_pixels_alone_or_in_batches(tmp_path):
    """torchvision's libjpeg-turbo gives PIL's pixels (the official codes read with PIL); the batched path, nvjpeg's
    on CUDA, runs here on the CPU with the same batching, fallback and errors."""
    from torchvision.transforms.functional import center_crop, pil_to_tensor, resize
    files = _folder_of(tmp_path, [(40, 30), (33, 50), (30, 30)])
    for k in (0, 1):
        Image.open(files.paths[k]).save(tmp_path / f"{k}.jpg", quality=90)
    files.paths[:2] = [tmp_path / "0.jpg", tmp_path / "1.jpg"]
    by_pil = torch.stack([center_crop(resize(pil_to_tensor(Image.open(p).convert("RGB")), 16, antialias=True), 16)
                          for p in files.paths])
    batched = files.decoding_jpeg_on("cpu")
    assert torch.equal(files.load(torch.arange(3)), by_pil) and torch.equal(batched.load(torch.arange(3)), by_pil)
    assert "in worker processes" in files.decoder and "batched on cpu" in batched.decoder
    (tmp_path / "1.jpg").write_bytes((tmp_path / "1.jpg").read_bytes()[:200])
    for reader in (files, batched):
        with pytest.raises(UsageError, match="1.jpg"):
            reader.load(torch.arange(3))
