"""Every GPU figure in one call: the script to run whenever a GPU machine is at hand (one call, < 8 minutes).

    python benchmarks/gpu.py --device cuda --out gpu.json      # on the GPU machine
    python benchmarks/gpu.py --device cpu --quick --out q.json  # tiny sizes: the test suite runs this

Sections, each against a reference measured in the same run (a failing section records its error and the
others go on; the JSON is rewritten after each):
- d3hr: inversion and generation images/s (30 guided DDIM steps, VAE decode) of a DiT-XL/2-shaped model at
  256 px with random weights, whole-class batches against one image at a time (the official code's way);
- group_sampling: seconds per class at d = 4096, n = 10, m = 10^6 (the D3HR paper: 2.6 s on an RTX A6000;
  our goal <= 0.5 s), eager and compiled, against merely drawing the same normals;
- students: ResNet-18 student-training images/s at 224 px with an online ResNet-18 teacher (rded protocol,
  100 classes x IPC 10), ours against a DataLoader with per-sample transforms (goal >= 3x);
- jpeg_decode: images/s of decoding 500x375 JPEGs to 224 px centre crops, batched `decode_jpeg` on the
  device against PIL in a DataLoader with one worker per core.  This measures the decode primitive; the
  streaming pipeline that will use it (issue 18) does not exist yet.  Both are timed warm: the workers started
  and the files read once.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).parent))
import d3hr_throughput  # noqa: E402
import eval_throughput  # noqa: E402
import group_sampling  # noqa: E402

from distillbench import atomic  # noqa: E402
from distillbench.accel import timed  # noqa: E402
from distillbench.plugins import registry  # noqa: E402

IMAGENET = SimpleNamespace(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def d3hr(device: str, quick: bool) -> dict:
    backbone = (d3hr_throughput.dit_xl_backbone(device, layers=2, width=64, size=64) if quick
                else d3hr_throughput.dit_xl_backbone(device))
    one_by_one, batch = (2, 4) if quick else (8, 64)
    ref_inv, ref_gen = d3hr_throughput.measure(backbone, one_by_one, per_image=True)
    inv, gen = d3hr_throughput.measure(backbone, batch, per_image=False)
    return {"model": "DiT-XL/2-shaped, random weights" if not quick else "tiny DiT (quick)",
            "image_size": backbone.image_size, "steps": 30, "guidance": 4.0, "batch": batch,
            "inversion_images_per_s": inv, "inversion_one_by_one_images_per_s": ref_inv,
            "generation_images_per_s": gen, "generation_one_by_one_images_per_s": ref_gen,
            "inversion_ratio": inv / ref_inv, "generation_ratio": gen / ref_gen}


def group_sampling_section(device: str, quick: bool) -> dict:
    d, n, m = 4096, 10, 2_000 if quick else 1_000_000
    result = {"d": d, "n": n, "m": m, "paper_seconds_rtx_a6000": 2.6, "goal_seconds": 0.5}
    result["draw_only_candidates_per_s"] = group_sampling.rate(group_sampling.draw_only, d, n, m, device)
    result["eager_seconds_per_class"] = m / group_sampling.rate(group_sampling.select, d, n, m, device)
    if quick:  # compiling takes longer than the quick run
        return result
    try:
        result.update(compiled_figures(d, n, m, device))
    except Exception as exc:  # torch.compile may not work on this device; the eager figures stand
        result["compiled_error"] = f"{type(exc).__name__}: {exc}"
    return result


def compiled_figures(d: int, n: int, m: int, device: str) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        group_sampling.select_compiled(d, n, group_sampling.chunk_size_for(n, d, device), device)
        compile_seconds = time.perf_counter() - start
    # select_group scores eagerly, with a warning, when torch.compile fails: that is no compiled figure
    fallbacks = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    if fallbacks:
        raise RuntimeError(fallbacks[0])
    return {"compile_seconds": compile_seconds,
            "compiled_seconds_per_class": m / group_sampling.rate(group_sampling.select_compiled, d, n, m, device)}


def students(device: str, quick: bool) -> dict:
    arch, size, classes, ipc, epochs = ("conv3", 32, 10, 4, 1) if quick else ("resnet18", 224, 100, 10, 3)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (classes * ipc, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(classes).repeat_interleave(ipc)
    spec = SimpleNamespace(name="imagenet-shaped", image_size=size, **vars(IMAGENET))
    model = registry("model").get(arch)
    eval_throughput.throughputs(model, images[:classes], labels[:classes], spec, 1, device)  # warm-up
    reference, ours, batch = eval_throughput.throughputs(model, images, labels, spec, epochs, device)
    return {"student": arch, "teacher": arch, "image_size": size, "classes": classes, "ipc": ipc, "epochs": epochs,
            "batch": batch, "ours_images_per_s": ours, "dataloader_images_per_s": reference,
            "ratio": ours / reference, "goal_ratio": 3.0}


def jpeg_folder(folder: Path, count: int) -> list[Path]:
    """``count`` seeded 500x375 JPEGs of smooth noise, the shape of an ImageNet photo."""
    from PIL import Image
    generator = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        coarse = torch.randint(0, 256, (3, 47, 63), dtype=torch.uint8, generator=generator).float()[None]
        image = torch.nn.functional.interpolate(coarse, size=(375, 500), mode="bilinear")[0].byte()
        paths.append(folder / f"{i:05d}.jpg")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(paths[-1], quality=90)
    return paths


class PilCrops(torch.utils.data.Dataset):
    def __init__(self, paths):
        import torchvision.transforms as T
        self.paths = paths
        self.transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def jpeg_decode(device: str, quick: bool) -> dict:
    """The streaming image pipeline (``FileImageSet.batches``) over a JPEG folder: JPEGs decoded in batches on
    ``device`` (nvjpeg on CUDA), and through PIL on the CPU threads, against a PIL DataLoader."""
    from distillbench.datasets import FileImageSet
    count, batch = (32, 16) if quick else (2048, 128)
    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as folder:
        paths = jpeg_folder(Path(folder), count)
        loader = torch.utils.data.DataLoader(PilCrops(paths), batch_size=batch, num_workers=workers,
                                             persistent_workers=True)
        consume = lambda: [b.to(device) for b in loader]  # noqa: E731
        consume()  # warm-up: the workers start (and the files are in the page cache for all)
        reference = count / timed(consume, device)
        files = FileImageSet(paths, [0] * count, ["any"], 224, Path(folder), resize=256, workers=workers)
        rates = {}
        for name, images in (("pipeline_decode_on_device", files.decoding_jpeg_on(device)), ("pipeline_pil", files)):
            stream = lambda: [b.to(device) for b in images.batches(batch_size=batch)]  # noqa: E731
            stream()  # warm-up (CUDA's decoder initialises on first use)
            rates[f"{name}_images_per_s"] = count / timed(stream, device)
    return {"images": count, "size": "500x375 -> resize 256, centre crop 224", "decode_device": device,
            **rates, "pil_dataloader_images_per_s": reference, "workers": workers,
            "ratio": rates["pipeline_decode_on_device_images_per_s"] / reference}


SECTIONS = {"d3hr": d3hr, "group_sampling": group_sampling_section, "students": students, "jpeg_decode": jpeg_decode}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script on a CPU")
    parser.add_argument("--out", type=Path, default=Path("gpu.json"))
    parser.add_argument("--sections", default=",".join(SECTIONS))
    args = parser.parse_args()
    start = time.perf_counter()
    report = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
              "quick": args.quick, "sections": {}}
    for name in args.sections.split(","):
        section_start = time.perf_counter()
        try:
            report["sections"][name] = SECTIONS[name](args.device, args.quick)
        except Exception as exc:  # a GPU run is precious: one failing section must not lose the others
            report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        report["sections"][name]["seconds"] = time.perf_counter() - section_start
        report["seconds"] = time.perf_counter() - start
        print(name, json.dumps(report["sections"][name], indent=1, default=str), flush=True)
        atomic.write_bytes(args.out, json.dumps(report, indent=2, default=str).encode())


if __name__ == "__main__":
    main()
