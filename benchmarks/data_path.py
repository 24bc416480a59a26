"""The streaming image pipeline of file-backed datasets (issue 18), on a synthetic ImageNet-shaped JPEG folder.

Builds, seeded, DATA/imagenet/val/<class>/*.JPEG (train/ a link to it): 100 classes x 40 images at 500 x 375
(1x), and a folder four times as large (4x), then measures in the same run:

1. images/s of distillbench's pipeline (``FileImageSet.batches``, N decoding processes) against torchvision's
   ``ImageFolder`` + ``DataLoader(num_workers=N)``, both decoding, resizing the shorter side to 224 and
   centre-cropping 224, with the same N; the better of two interleaved passes of each.  Goal: ratio >= 1.0.
2. The peak resident memory of a fresh process that runs an evaluation's test pass (the ``students``
   evaluator's ``accuracy``, through the test view and the in-memory limit) over the 1x and the 4x folder.
   Goal: the 4x peak within 10% of the 1x peak (nothing holds the split).

    python benchmarks/data_path.py [--workers N] [--classes 100] [--per-class 40] [--folder DIR]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_folder(root: Path, classes: int, per_class: int, seed: int = 0) -> Path:
    """Smooth random RGB images (a coarse colour grid, bicubic-upsampled, with grain) saved as JPEG quality 90,
    so that files and decoding cost are those of photographs rather than of noise."""
    import torch.nn.functional as F
    from PIL import Image
    generator = torch.Generator().manual_seed(seed)
    for c in range(classes):
        folder = root / "imagenet" / "val" / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            coarse = torch.rand(1, 3, 12, 16, generator=generator)
            image = F.interpolate(coarse, size=(375, 500), mode="bicubic", align_corners=False)[0]
            image = (image + 0.05 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
            Image.fromarray((image * 255).byte().permute(1, 2, 0).numpy()).save(folder / f"{i}.JPEG", quality=90)
    (root / "imagenet" / "train").symlink_to("val")  # the loader names the classes from train/
    return root


def test_split(root: Path, workers: int):
    from distillbench.datasets import DataSource
    from distillbench.plugins import registry
    return DataSource(root, workers=workers).load(registry("dataset").get("imagenet"), "test")


def ours(root: Path, workers: int) -> float:
    images = test_split(root, workers)
    consume = lambda: sum(len(batch) for batch in images.batches(batch_size=64))  # noqa: E731
    return rate_of_second_pass(consume)


def reference(root: Path, workers: int) -> float:
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    folder = ImageFolder(root / "imagenet" / "val", transform=T.Compose([
        T.PILToTensor(), T.Resize(224, antialias=True), T.CenterCrop(224)]))
    loader = DataLoader(folder, batch_size=64, num_workers=workers, persistent_workers=True)
    return rate_of_second_pass(lambda: sum(len(x) for x, _ in loader))


def rate_of_second_pass(consume) -> float:
    """Images/s of a second pass: the first starts the workers, imports and warms the decoders, and brings the
    files into the page cache, for both sides alike."""
    consume()
    start = time.perf_counter()
    count = consume()
    return count / (time.perf_counter() - start)


def evaluation_pass(root: Path, workers: int) -> None:
    """One test pass of a small model as the evaluator runs it; prints this process's peak RSS in MiB."""
    from distillbench.teachers import Normalizer
    from distillbench_eval.training import TEST_IN_MEMORY, accuracy
    test = test_split(root, workers).test_view().resident(TEST_IN_MEMORY)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 100))
    top1 = accuracy(model, test, Normalizer([0.5] * 3, [0.25] * 3, "cpu"), "cpu")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": len(test), "top1": top1, "peak_rss_mib": peak}))


def peak_of_evaluation(root: Path, workers: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--evaluation-pass", str(root), "--workers", str(workers)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main():
    from distillbench.images import available_cores
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=available_cores())
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--folder", type=Path, help="where to build the folders (default: a temporary folder)")
    parser.add_argument("--evaluation-pass", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evaluation_pass:
        return evaluation_pass(args.evaluation_pass, args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.folder or Path(tmp)
        print(f"building {args.classes} x {args.per_class} and {args.classes} x {4 * args.per_class} JPEGs "
              f"at 500 x 375 under {base}", file=sys.stderr)
        small = build_folder(base / "1x", args.classes, args.per_class)
        large = build_folder(base / "4x", args.classes, 4 * args.per_class, seed=1)
        os.sync()  # the new files' write-back would otherwise slow whichever side is measured first
        rates = {"ours": 0.0, "imagefolder_dataloader": 0.0}
        for _ in range(2):  # interleaved, the better of two passes each
            rates["ours"] = max(rates["ours"], ours(small, args.workers))
            rates["imagefolder_dataloader"] = max(rates["imagefolder_dataloader"], reference(small, args.workers))
        peaks = {"1x": peak_of_evaluation(small, args.workers), "4x": peak_of_evaluation(large, args.workers)}
    result = {"workers": args.workers, "images_per_s": rates, "ratio": rates["ours"] / rates["imagefolder_dataloader"],
              "evaluation": peaks, "peak_4x_over_1x": peaks["4x"]["peak_rss_mib"] / peaks["1x"]["peak_rss_mib"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
