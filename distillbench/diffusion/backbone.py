"""The diffusion backbone: a class-conditional latent DiT, its VAE and a DDIM scheduler, as a diffusers
pipeline folder (``DiTPipeline.save_pretrained`` / ``from_pretrained``).  D3HR and D4M share it.

For ImageNet-1K the user points ``backbone=PATH`` at a local copy of ``facebook/DiT-XL-2-256``.  For
every other dataset D3HR fine-tunes DiT on the dataset first (the official README; no recipe is
released), so ``distillbench d3hr train-backbone`` trains a VAE and a small DiT on the dataset (or
fine-tunes from ``--init``) and saves the folder in the cache, where ``run`` finds it by dataset name.
"""
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import torch

from distillbench import paths
from distillbench.accel import autocast
from distillbench.errors import UsageError, check_finite

INFO_FILE = "distillbench.json"
SHIPPED = Path(__file__).parent / "weights"
BACKBONE_FIX = "check the backbone's weights (or use --option amp=fp32)"


def cached_backbone_dir(dataset: str) -> Path:
    return paths.cache_dir() / "d3hr" / "backbones" / paths.file_name(dataset)


def pipeline_folder(name) -> Path:
    """A diffusers pipeline folder: a local path, or a Hub id (``facebook/DiT-XL-2-256``) found in the Hugging
    Face cache, as ``from_pretrained`` reads it (never downloaded here: ``distillbench download ID``)."""
    from distillbench.published import hub_snapshot
    path = Path(name)
    if not path.exists() and str(name).count("/") == 1 and not str(name).startswith((".", "/", "~")):
        path = hub_snapshot(str(name))
    if not (path / "model_index.json").is_file():
        raise UsageError(f"{name} is not a diffusers pipeline folder (no model_index.json); point it at a Hub id "
                         "such as facebook/DiT-XL-2-256 or a local copy of one")
    return path


def find_backbone(dataset: str, explicit=None) -> Path:
    """``backbone=`` (a pipeline folder or a Hub id) if given, else the cache's folder for the dataset, else the
    folder shipped with distillbench."""
    if explicit:
        return pipeline_folder(explicit)
    for path in (cached_backbone_dir(dataset), SHIPPED / dataset):
        if (path / "model_index.json").is_file():
            return path
    raise UsageError(f"no D3HR backbone for '{dataset}' (looked in {cached_backbone_dir(dataset)}); train one with "
                     f"`distillbench d3hr train-backbone --dataset {dataset}` or pass --option backbone=PATH")


def weights_fingerprint(path: Path) -> str:
    """sha256 over a pipeline folder's weight and config files: which backbone made a result.  Remembered in the
    process while the files' sizes and modification times stay as they were: a run asks for it more than once
    (its id, its set-up, its manifest), and a DiT-XL/2 folder holds gigabytes."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and p.suffix in (".safetensors", ".bin", ".json") and p.name != INFO_FILE)
    stats = [(file, file.stat()) for file in files]
    return _folder_digest(path, tuple((file, stat.st_size, stat.st_mtime_ns) for file, stat in stats))


@lru_cache(maxsize=32)
def _folder_digest(path: Path, files: tuple) -> str:
    import hashlib

    from distillbench.checksum import sha256_file
    digest = hashlib.sha256()
    for file, _, _ in files:
        digest.update(str(file.relative_to(path)).encode())
        sha256_file(file, digest)
    return "sha256:" + digest.hexdigest()


@dataclass
class Backbone:
    """A loaded pipeline: ``eps(x, t, labels)``, ``encode``, ``decode`` and the noise schedule."""

    transformer: object
    vae: object
    scheduler: object
    path: Path
    device: str = "cpu"
    amp: object = True  # True or "bf16", "fp16", False or "fp32": see distillbench.accel.precision

    @classmethod
    def load(cls, path: Path, device: str = "cpu", amp=True) -> "Backbone":
        from diffusers import DDIMScheduler, DiTPipeline
        from diffusers.utils import logging
        logging.disable_progress_bar()
        try:
            pipe = DiTPipeline.from_pretrained(str(path), low_cpu_mem_usage=False)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot load the backbone at {path}: {exc}") from None
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        transformer = pipe.transformer.to(device).eval().requires_grad_(False)
        return cls(transformer, pipe.vae.to(device).eval().requires_grad_(False), scheduler, Path(path), device, amp)

    @property
    def num_classes(self) -> int:
        return self.transformer.config.num_embeds_ada_norm

    @property
    def null_label(self) -> int:
        """The label the DiT was trained to read as "no class" (1000 for ImageNet DiTs)."""
        return self.num_classes

    @property
    def latent_shape(self) -> tuple:
        size = self.transformer.config.sample_size
        return (self.transformer.config.in_channels, size, size)

    @property
    def image_size(self) -> int:
        return self.transformer.config.sample_size * 2 ** (len(self.vae.config.block_out_channels) - 1)

    @cached_property
    def alphas_cumprod(self):
        return self.scheduler.alphas_cumprod.to(torch.float64)

    def eps(self, x, t: int, labels):
        """The DiT's noise prediction (the learned-variance channels dropped), in float32."""
        timesteps = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        with torch.inference_mode(), autocast(self.device, self.amp):
            out = self.transformer(x, timestep=timesteps, class_labels=labels).sample
        return out[:, : x.shape[1]].float()

    def encode(self, images_u8, generator=None, mode: str = "sample"):
        """uint8 images ``[b, 3, H, W]`` -> scaled latents; resized to the backbone's resolution first."""
        x = images_u8.to(self.device).float() / 127.5 - 1
        if x.shape[-1] != self.image_size:
            x = torch.nn.functional.interpolate(x, size=(self.image_size,) * 2, mode="bicubic", align_corners=False)
        with torch.inference_mode(), autocast(self.device, self.amp):
            dist = self.vae.encode(x).latent_dist
            z = dist.sample(generator=generator) if mode == "sample" else dist.mean
        return z.float() * self.vae.config.scaling_factor

    def decode(self, latents, size: int):
        """Scaled latents -> uint8 images ``[b, 3, size, size]`` (bicubic resize to the dataset's size)."""
        with torch.inference_mode(), autocast(self.device, self.amp):
            x = self.vae.decode(latents / self.vae.config.scaling_factor).sample.float()
        x = ((x + 1) * 127.5).clamp(0, 255)
        if x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", antialias=True,
                                                align_corners=False).clamp(0, 255)
        return x.round().to(torch.uint8).cpu()

    def generate(self, latents, label: int, timesteps, guidance: float, size: int, batch_size: int = 256,
                 progress=None, floor_step=None, noise=None):
        """DDIM-sample ``latents`` along ``timesteps`` (descending) for class ``label``, decode to uint8 images.
        With ``floor_step`` (the grid's step), the official D3HR loop instead (:func:`ddim.sample_floored`); with
        ``noise`` (a generator), ancestral DDPM sampling (:func:`ddim.ancestral_sample`)."""
        from distillbench.diffusion.ddim import ancestral_sample, guided, sample, sample_floored
        alphas = self.alphas_cumprod[timesteps].tolist()
        images = []
        chunks = latents.split(batch_size)
        for chunk in progress(chunks) if progress else chunks:
            labels = torch.full((len(chunk),), label, device=chunk.device, dtype=torch.long)
            eps = guided(self.eps, labels, self.null_label, guidance)
            if noise is not None:
                z0 = ancestral_sample(eps, chunk, timesteps, self.alphas_cumprod, noise)
            elif floor_step is not None:
                z0 = sample_floored(eps, chunk, timesteps, self.alphas_cumprod, floor_step)
            else:
                z0 = sample(eps, chunk, timesteps, alphas)
            check_finite(z0, f"generated latents of class {label}", BACKBONE_FIX)
            images.append(self.decode(z0, size))
        return torch.cat(images)

    def info(self) -> dict:
        file = self.path / INFO_FILE
        return json.loads(file.read_text()) if file.is_file() else {}

    def check(self, spec, num_classes: int, explicit: bool) -> None:
        """Fail before any work when the backbone cannot serve the dataset.  A backbone trained on
        another dataset is refused unless it was asked for by path (e.g. mnist5k's for the full mnist).
        Images are resized to the backbone's resolution and back, as the paper's code does (CIFAR through
        a 256 px DiT), but a backbone coarser than the dataset would blur every image: refused."""
        dataset = spec.name
        if self.num_classes < num_classes:
            raise UsageError(f"the backbone at {self.path} knows {self.num_classes} classes but dataset "
                             f"'{dataset}' has {num_classes}; train one with "
                             f"`distillbench d3hr train-backbone --dataset {dataset}`")
        if self.image_size < spec.image_size:
            raise UsageError(f"the backbone at {self.path} makes {self.image_size} px images but dataset "
                             f"'{dataset}' is {spec.image_size} px; train one at that size with "
                             f"`distillbench d3hr train-backbone --dataset {dataset}`")
        trained_on = self.info().get("dataset")
        if trained_on is not None and trained_on != dataset and not explicit:
            raise UsageError(f"the backbone at {self.path} was trained on '{trained_on}', not '{dataset}'; "
                             f"train one with `distillbench d3hr train-backbone --dataset {dataset}`")
        if self.vae.config.latent_channels != self.transformer.config.in_channels:
            raise UsageError(f"the backbone at {self.path} is inconsistent: VAE latents have "
                             f"{self.vae.config.latent_channels} channels, the DiT expects "
                             f"{self.transformer.config.in_channels}")
