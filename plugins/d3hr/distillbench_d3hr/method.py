"""The ``d3hr`` Distiller: wires the pure steps (inversion, statistics, group sampling, sampling) to the core.

Per class (one unit of work each, so runs resume and shard by class):
1. encode the class's training images with the VAE (scaled latents; ``encode=sample`` draws the posterior
   with a seeded generator, as the official code draws it unseeded);
2. map them to noise: deterministic DDIM inversion to grid point ``inversion_steps`` of the
   ``num_inference_steps`` grid (``mapping=ddim``), or DDPM forward noising to the same level
   (``mapping=ddpm``, Table 3's ablation);
3. fit a diagonal Gaussian (float64 streaming mean and unbiased variance), kept per class and shared by
   the root's runs that differ only in IPC or sampling options;
4. pick IPC latents by group sampling over ``m`` candidates (or one random group, ``sampling=random``);
5. DDIM-sample them back to t = 0 with the class label and classifier-free guidance, decode, resize.

Defaults follow the paper where paper and official code differ (lambda_skew 0.5, per-member skewness,
m = 10^6, sampling starts where inversion stopped); ``recipe=official`` selects the code's (lambda_skew 0.1,
feature-axis skewness, m = 10^8, sampling from one grid step above, every sampling step floored at t = 1,
so that the last two both end there, fp16 autocast on CUDA) for the options left unset.  Not yet the code's
under either recipe: ImageNet images encoded from the original at 256 px.  ``inversion_steps=31`` is the
paper's T = 31 of 50: grid point 31 (counting t = 0), t = 600, the official ``i_step=6``.  Guidance 4.0 is
the code's, used for inversion and sampling alike (``invert_guided=false`` inverts unguided).
"""
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, Optional

from distillbench.api import (Distiller, DistillbenchError, ImageSet, UnitResult, UsageError, atomic, derive_seed,
                              option, precision)

SCORES = {"mean": (1, 0, 0), "mean_std": (1, 1, 0), "full": (1, 1, 1)}
PAPER = {"lambda_skew": 0.5, "skew_axis": "members", "m": 1_000_000, "sampling_offset": 0, "t1_floor": False,
         "amp": "bf16"}
OFFICIAL = {"lambda_skew": 0.1, "skew_axis": "features", "m": 100_000_000, "sampling_offset": 1, "t1_floor": True,
            "amp": "fp16"}


@dataclass(frozen=True)
class Options:
    backbone: Optional[str] = option(None, "diffusers DiT pipeline folder; default: the cached (or shipped) "
                                           "backbone of the dataset")
    stats: Optional[str] = option(None, "regenerate from a stats.safetensors file instead of mapping the data")
    mapping: Literal["ddim", "ddpm"] = option("ddim", "DDIM inversion, or DDPM forward noising to the same level "
                                                      "(Table 3's ablation)")
    sampling: Literal["group", "random"] = option("group", "group sampling, or one random group from the Gaussian")
    score: Literal["mean", "mean_std", "full"] = option("full", "terms of the group score: mean, +std, +skewness")
    sigma_scale: float = option(1.0, "scale of the class Gaussian's std that groups are drawn from and scored "
                                     "against (the paper's variance-scaling analysis: 0.5, 1, 1.5)")
    lambda_mean: float = option(1.0, "weight of the group score's mean term")
    lambda_std: float = option(1.0, "weight of the group score's std term")
    recipe: Literal["paper", "official"] = option("paper", "the paper's settings, or the official code's, for the "
                                                           "options below left unset")
    lambda_skew: Optional[float] = option(None, "weight of the skewness term (paper 0.5, official code 0.1)")
    skew_axis: Optional[Literal["members", "features"]] = option(None, "skewness over a group's members (paper) or "
                                                                       "over features (official code)")
    m: Optional[int] = option(None, "candidate groups drawn per class (paper 10^6, official code 10^8)")
    inversion_steps: int = option(31, "grid point where inversion stops (31 of 50: t = 600)")
    num_inference_steps: int = option(50, "points of the DDIM grid")
    guidance: float = option(4.0, "classifier-free guidance scale of inversion and sampling")
    invert_guided: bool = option(True, "guide the inversion too (official code), or invert unguided")
    sampling_offset: Optional[int] = option(None, "start sampling this many grid points above the inversion's end "
                                                  "(paper 0, official code 1)")
    t1_floor: Optional[bool] = option(None, "every sampling step moves to t - step floored at 1, so the last two end "
                                            "at t = 1, one more model call (official code; paper: no)")
    encode: Literal["sample", "mean"] = option("sample", "VAE posterior: a seeded sample, or its mean")
    batch_size: int = option(256, "images per model call")
    amp: Optional[Literal["bf16", "fp16", "fp32"]] = option(None, "autocast of the model calls: bf16 where native "
                                                                  "(paper recipe), fp16 on CUDA (official code), fp32")

    def __post_init__(self):
        top = self.num_inference_steps - (self.sampling_offset or 0)
        if not 2 <= self.inversion_steps <= top:
            raise UsageError(f"option inversion_steps={self.inversion_steps} must lie in 2..{top} (grid points of "
                             "num_inference_steps)")
        if (self.m is not None and self.m < 1) or self.batch_size < 1:
            raise UsageError("options m and batch_size must be at least 1")
        if self.sigma_scale <= 0:
            raise UsageError(f"option sigma_scale={self.sigma_scale} must be positive")

    def weights(self):
        from distillbench_d3hr.group_sampling import ScoreWeights
        on = SCORES[self.score]
        return ScoreWeights(self.lambda_mean * on[0], self.lambda_std * on[1], self.lambda_skew * on[2], self.skew_axis)


class StatsOnly(ImageSet):
    """The training split's class list, read from a statistics file: no images needed.

    (Module-level code stays free of torch: plugins are imported at CLI start-up.)"""

    def __init__(self, header: dict, checksum: str):
        super().__init__([], header["class_names"])
        self.checksum = checksum

    def compute_fingerprint(self) -> str:
        return self.checksum


class D3HR(Distiller):
    name = "d3hr"
    description = "D3HR (ICML 2025): DDIM inversion, per-class Gaussian, group sampling, DDIM sampling"
    citation = ('Zhao et al., "Taming Diffusion for Dataset Distillation with High Representativeness", '
                'ICML 2025; code: github.com/lin-zhao-resoLve/D3HR')
    draws_real_images = False
    smoke_options = {"m": "64", "num_inference_steps": "10", "inversion_steps": "6"}
    Options = Options

    @cached_property
    def stored(self):
        """The statistics file of ``stats=`` (read once), or None."""
        if self.options.stats is None:
            return None
        from distillbench_d3hr.stats import read_stats
        return read_stats(self.options.stats)

    def recipe(self, spec) -> dict:
        """The paper's settings, or (``recipe=official``) those of the official code (D3HR@8ba351d
        ``group_sampling.py`` L226, L170-177, L287-291; ``dit_inversion_save_statistic.py`` L58-109, start_step 18
        for i_step 6; fp16 L406)."""
        return OFFICIAL if self.options.recipe == "official" else PAPER

    def training_set(self, load):
        if self.stored is None:
            return load()
        return StatsOnly(self.stored.header, self.stored.checksum)

    # -- set-up: backbone, grid, stored statistics -------------------------------------------------------

    def _backbone_option(self):
        """``backbone=``, else the one named by the statistics file, else None (the dataset's)."""
        if self.options.backbone or self.stored is None:
            return self.options.backbone
        return self.stored.header["backbone"]

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        from distillbench.api import find_backbone, weights_fingerprint
        return {"backbone": weights_fingerprint(find_backbone(spec.name, self._backbone_option()))}

    def setup(self, ctx) -> None:
        from distillbench.api import Backbone, ddim_grid, find_backbone, weights_fingerprint
        opts = self.options
        backbone_path = self._backbone_option()
        self.backbone = Backbone.load(find_backbone(ctx.spec.name, backbone_path), ctx.device, opts.amp)
        self.backbone.check(ctx.spec, ctx.train.num_classes, explicit=backbone_path is not None)
        self.backbone_fingerprint = weights_fingerprint(self.backbone.path)
        self.source = ctx.train.at_size(self.backbone.image_size)  # official: Resize(256) + CenterCrop(256)
        grid = ddim_grid(opts.num_inference_steps)
        stop = opts.inversion_steps - 1
        self.inversion_path = grid[: stop + 1]
        self.sampling_path = grid[: stop + 1 + opts.sampling_offset][::-1]
        self.grid_step = grid[1] - grid[0]
        if self.stored is not None:
            self._check_stored(ctx)
        self.stats_dir = self._stats_dir(ctx)

    def _stats_dir(self, ctx) -> Path:
        """Where each class's statistics are kept, under a hash of everything they depend on: shared by the
        runs of one root that map the same data with the same backbone, mapping options and seed, so that
        a matrix over IPC 1, 10 and 50 maps the training set once (IPC and the sampling options do not
        change the statistics)."""
        import torch
        from distillbench.api import json_digest
        opts = self.options
        inputs = {"train": self.source.fingerprint(), "backbone": self.backbone_fingerprint,
                  "inversion_path": self.inversion_path, "mapping": opts.mapping, "guidance": opts.guidance,
                  "invert_guided": opts.invert_guided, "encode": opts.encode, "batch_size": opts.batch_size,
                  "amp": opts.amp, "seed": ctx.seed, "device": torch.device(ctx.device).type}
        return ctx.shared / "d3hr-stats" / json_digest(inputs)[:16]

    def _check_stored(self, ctx) -> None:
        header = self.stored.header
        if header["latent_shape"] != list(self.backbone.latent_shape):
            raise UsageError(f"statistics in {self.options.stats} are of latents {header['latent_shape']}, "
                             f"the backbone makes {list(self.backbone.latent_shape)}")
        if header["inversion_path"][-1] != self.inversion_path[-1]:
            raise UsageError(f"statistics in {self.options.stats} were taken at t={header['inversion_path'][-1]}; "
                             f"pass --option inversion_steps to match (now t={self.inversion_path[-1]})")

    def header(self, ctx) -> dict:
        """What a statistics file must say to regenerate a set from it."""
        opts = self.options
        return {"dataset": ctx.spec.name, "class_names": ctx.train.class_names, "backbone": str(self.backbone.path),
                "backbone_fingerprint": self.backbone_fingerprint,
                "latent_shape": list(self.backbone.latent_shape),
                "inversion_path": self.inversion_path, "mapping": opts.mapping, "guidance": opts.guidance,
                "invert_guided": opts.invert_guided, "encode": opts.encode, "seed": ctx.seed,
                "train_fingerprint": self.source.fingerprint()}

    # -- per class -----------------------------------------------------------------------------------------

    def distill_unit(self, unit, ctx):
        import torch
        from distillbench_d3hr.group_sampling import random_group, select_group
        (label,) = set(unit.labels)
        mean, variance = self.class_stats(label, ctx)
        mu = mean.to(ctx.device, torch.float32)
        sigma = variance.sqrt().to(ctx.device, torch.float32) * self.options.sigma_scale
        key, n = f"class-{label:05d}", len(unit.slots)
        if self.options.sampling == "group":
            bar = lambda chunks: ctx.progress(chunks, desc=f"group sampling {key}")  # noqa: E731
            chosen = select_group(mu, sigma, n, self.options.m, ctx.seed, key, self.options.weights(), progress=bar)
            images = self.generate(chosen.latents(mu, sigma).view(n, *self.backbone.latent_shape), label, ctx)
            return UnitResult(images, {"index": chosen.index, "score": chosen.score, "chunk_size": chosen.chunk_size})
        latents = random_group(mu, sigma, n, ctx.seed, key)
        return self.generate(latents.view(n, *self.backbone.latent_shape), label, ctx)

    def generate(self, latents, label: int, ctx):
        """DDIM-sample ``latents`` back to t = 0 for class ``label``; uint8 images at the dataset's size."""
        return self.backbone.generate(latents, label, self.sampling_path, self.options.guidance,
                                      ctx.spec.image_size, self.options.batch_size,
                                      lambda chunks: ctx.progress(chunks, desc=f"generating class {label}"),
                                      floor_step=self.grid_step if self.options.t1_floor else None)

    def class_stats(self, label: int, ctx):
        """(mean, variance) of the class's mapped latents: stored, checkpointed, or computed now (while
        holding a lock, so that concurrent runs map each class once)."""
        import torch
        from safetensors.torch import load_file, save
        if self.stored is not None:
            return self.stored.means[label], self.stored.variances[label]
        checkpoint = self.stats_dir / f"class-{label:05d}.safetensors"
        with atomic.exclusive(checkpoint.with_suffix(".lock")):
            if not checkpoint.is_file():
                moments = self.map_class(label, ctx)
                atomic.write_bytes(checkpoint, save({"mean": moments.mean, "variance": moments.variance,
                                                     "count": torch.tensor([moments.count])}))
        tensors = load_file(str(checkpoint))
        return tensors["mean"], tensors["variance"]

    def map_class(self, label: int, ctx):
        """Encode and invert (or noise) every training image of the class, accumulating moments."""
        import torch
        from distillbench.api import BACKBONE_FIX, check_finite, forward_noise, guided, invert
        from distillbench_d3hr.stats import Moments
        opts, backbone = self.options, self.backbone
        index = ctx.train.indices_of(label)
        if len(index) == 0:
            raise DistillbenchError(f"class {label} ('{ctx.train.class_names[label]}') has no training images")
        generator = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, f"map/class-{label:05d}"))
        alphas = backbone.alphas_cumprod[self.inversion_path].tolist()
        guidance = opts.guidance if opts.invert_guided else 1.0
        moments = Moments(int(torch.tensor(backbone.latent_shape).prod()))
        batches = self.source.batches(index, opts.batch_size)
        for images in ctx.progress(batches, desc=f"mapping class {label}", total=-(-len(index) // opts.batch_size)):
            z0 = backbone.encode(images, generator, opts.encode)
            labels = torch.full((len(images),), label, device=ctx.device, dtype=torch.long)
            if opts.mapping == "ddim":
                zt = invert(guided(backbone.eps, labels, backbone.null_label, guidance), z0, self.inversion_path, alphas)
            else:
                zt = forward_noise(z0, alphas[-1], generator)
            check_finite(zt, f"mapped latents of class {label}", BACKBONE_FIX)
            moments.update(zt.flatten(1))
        return moments

    # -- manifest and the statistics file -------------------------------------------------------------------

    def notes(self, ipc: int) -> dict:
        dropped = [term for term, needs in (("std", 2), ("skewness", 3)) if ipc < needs]
        return {"d3hr": {
            "options_follow": f"{self.options.recipe} (recipe=paper: lambda_skew 0.5, per-member skewness, m 1e6, "
                              "sampling from the inverted step; recipe=official: 0.1, features, 1e8, one step above, "
                              "t = 1 floor); options given by hand win",
            "deviations": "recipe=official asks for fp16 autocast, which exists only on CUDA (fp32 on a CPU)",
            "score_terms_dropped": f"{', '.join(dropped)} undefined for IPC {ipc}" if dropped else None,
            "inversion_timestep": 1000 // self.options.num_inference_steps * (self.options.inversion_steps - 1),
        }}

    def finalize(self, ctx, folder: Path, unit_notes: dict) -> dict:
        """Write ``stats.safetensors`` (every class's Gaussian) beside the images: enough, with the backbone,
        to regenerate a set of any IPC (``distillbench d3hr generate``)."""
        import torch
        from distillbench_d3hr.stats import STATS_FILE, write_stats
        stats = [self.class_stats(c, ctx) for c in range(ctx.train.num_classes)]
        means, variances = torch.stack([m for m, _ in stats]), torch.stack([v for _, v in stats])
        counts = self.stored.counts if self.stored is not None else [
            int(_load_count(self.stats_dir / f"class-{c:05d}.safetensors")) for c in range(len(stats))]
        write_stats(folder / STATS_FILE, means, variances, counts, self.header(ctx))
        return {"d3hr_selection": dict(sorted(unit_notes.items())),
                "precision": precision(ctx.device, self.options.amp)}


def _load_count(path: Path) -> int:
    from safetensors.torch import load_file
    return int(load_file(str(path))["count"][0])


