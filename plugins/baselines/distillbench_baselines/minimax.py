"""Minimax diffusion (Gu et al., CVPR 2024, "Efficient Dataset Distillation via Minimax Diffusion").

Facts from vimar-gu/MinimaxDiffusion@969fc6f.  The class-conditional DiT is fine-tuned (``train_dit.py``) with the
denoising loss plus two terms per class of the batch, on the predicted clean latent x0_hat (L236-284):
representativeness, 1 - the smallest cosine similarity to the class's memory of real latents, and diversity, the
largest cosine similarity to its memory of earlier x0_hat; each weighted by lambda (0.002, 0.008: argparse L360-361)
over the number of classes in the batch.  The memories are FIFOs of 64 per class (``--memory-size``), appended after
the class's terms are computed, so a class's first batch adds none.  Parameter-efficient DiffFit tuning
(``mark_difffit_trainable`` L116-127; ``models.py`` L53-58, L178-188, L243): per-channel scales, initialised to 1,
on the qkv and projection outputs of the attention and on the gated attention and MLP branches of the first 14 of
DiT-XL's 28 blocks; only the biases, the scales and the label table train.  AdamW, lr 1e-3, no weight decay, constant
(L183-189); global batch 8, 8 epochs, drop_last (``run.sh``; L201-213); EMA 0.9999, whose weights are sampled
(L36-45).  Sampling (``sample.py`` L58-101): ancestral DDPM over IDDPM's 50 respaced steps, clip_denoised off,
classifier-free guidance 4.0 from N(0, I).

Here the DiT is D3HR's backbone of the dataset (or ``backbone=``), fine-tuned by the core's ``train_dit`` with
:class:`~distillbench_baselines.minimax_tuning.MinimaxTuning` and kept in the cache.  Deviations (recorded in the manifest): diffusers' DiT has separate q,
k, v projections (three scales for the fused qkv's one) and one label table per block (each trains; officially one
shared); the scales sit on the first half of the blocks (DiT-XL's 14 of 28); the scales are folded into their linear
layers after tuning, so the saved backbone is a plain DiT; the loss is the epsilon MSE without the learned-variance
VB term, and sampling uses the fixed small variance (the learned-variance channels are not read); guidance acts on
all latent channels (officially 3 of 4); latents are the cached posterior moments resampled each step, without the
official horizontal flip; one VAE encodes and decodes (officially ft-ema and ft-mse); the fine-tune's seed is
fixed (0) and the samples are drawn per class from the run's seed (officially one stream, seed 0).
"""
from dataclasses import dataclass, fields
from typing import Literal, Optional

from distillbench.api import Distiller, UsageError, derive_seed, option


@dataclass(frozen=True)
class Options:
    backbone: Optional[str] = option(None, "the DiT pipeline fine-tuned: folder or Hub id; default: D3HR's backbone "
                                           "of the dataset")
    lambda_pos: float = option(0.002, "weight of the representativeness term (0 and lambda_neg 0: plain DiffFit)")
    lambda_neg: float = option(0.008, "weight of the diversity term")
    memory_size: int = option(64, "real and generated latents remembered per class")
    tuning: Literal["difffit", "full"] = option("difffit", "difffit: biases, scales and label tables; full: all")
    epochs: int = option(8, "fine-tune passes over the training set")
    steps: Optional[int] = option(None, "fine-tune steps; default: epochs x (training images // batch)")
    batch: int = option(8, "fine-tune batch")
    lr: float = option(1e-3, "AdamW learning rate (constant, no weight decay)")
    ema_decay: float = option(0.9999, "EMA of the fine-tuned weights, which sample")
    sampler: Literal["ddpm", "ddim"] = option("ddpm", "ancestral DDPM on the respaced grid (Minimax's), or DDIM")
    num_inference_steps: int = option(50, "points of the sampling grid")
    guidance: float = option(4.0, "classifier-free guidance scale")
    batch_size: int = option(256, "images per sampling call")
    amp: Literal["bf16", "fp16", "fp32"] = option("bf16", "autocast of the sampling calls")

    def __post_init__(self):
        if min(self.memory_size, self.epochs, 1 if self.steps is None else self.steps, self.batch,
               self.num_inference_steps, self.batch_size) < 1:
            raise UsageError("options memory_size, epochs, steps, batch, num_inference_steps and batch_size must be "
                             "at least 1")

    def fine_tune(self) -> dict:
        """The options that make the fine-tuned backbone (the rest only sample from it)."""
        sampling = {"sampler", "num_inference_steps", "guidance", "batch_size", "amp"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in sampling}


class Minimax(Distiller):
    name = "minimax"
    description = "Minimax diffusion (CVPR 2024): a DiT fine-tuned for representative and diverse samples, sampled"
    citation = ('Gu et al., "Efficient Dataset Distillation via Minimax Diffusion", CVPR 2024; '
                'code: github.com/vimar-gu/MinimaxDiffusion')
    draws_real_images = False
    smoke_options = {"steps": "4", "num_inference_steps": "5"}
    Options = Options

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        from distillbench.api import find_backbone, weights_fingerprint
        return {"backbone": weights_fingerprint(find_backbone(spec.name, self.options.backbone))}

    def setup(self, ctx) -> None:
        from distillbench.api import Backbone
        folder = fine_tuned(self.options, ctx)
        self.backbone = Backbone.load(folder, ctx.device, self.options.amp)
        self.backbone.check(ctx.spec, ctx.train.num_classes, explicit=True)

    def finalize(self, ctx, folder, unit_notes: dict) -> dict:
        """Which fine-tune sampled the set: its folder in the cache and the checksum of its weights."""
        from distillbench.api import weights_fingerprint
        return {"fine_tuned": {"path": str(self.backbone.path), "fingerprint": weights_fingerprint(self.backbone.path)}}

    def notes(self, ipc: int) -> dict:
        return {"minimax": {"deviations": "separate q/k/v scales and per-block label tables (diffusers' DiT); scales "
                                          "on the first half of the blocks, folded after tuning; no VB term, fixed "
                                          "small variance; guidance on all channels; no flips; one VAE; fine-tune "
                                          "seed 0, samples seeded per class"}}

    def distill_unit(self, unit, ctx):
        import torch

        from distillbench.api import ddim_grid, respaced_grid
        (label,) = set(unit.labels)
        o = self.options
        generator = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, f"minimax/{unit.id}"))
        x = torch.randn((len(unit.slots), *self.backbone.latent_shape), generator=generator, device=ctx.device)
        grid = (respaced_grid if o.sampler == "ddpm" else ddim_grid)(o.num_inference_steps)[::-1]
        return self.backbone.generate(x, label, grid, o.guidance, ctx.spec.image_size, o.batch_size,
                                      noise=generator if o.sampler == "ddpm" else None)


def fine_tuned(options: Options, ctx):
    """The backbone fine-tuned as ``options`` say, from the cache; made there first (under a lock, so that
    concurrent runs and torchrun's ranks make it once)."""
    from distillbench.api import (BackboneConfig, atomic, cache_dir, find_backbone, json_digest, train_backbone,
                                  weights_fingerprint)
    from distillbench_baselines.minimax_tuning import MinimaxTuning
    init = find_backbone(ctx.spec.name, options.backbone)
    key = {"dataset": ctx.spec.name, "init": weights_fingerprint(init), "train": ctx.train.fingerprint(),
           **options.fine_tune()}
    folder = cache_dir() / "minimax" / json_digest(key)[:16]
    with atomic.exclusive(folder.with_suffix(".lock")):
        if not (folder / "model_index.json").is_file():
            steps = options.steps or options.epochs * max(1, len(ctx.train) // options.batch)
            cfg = BackboneConfig(dit_steps=steps, dit_batch=options.batch, dit_lr=options.lr,
                                 ema_decay=options.ema_decay)
            train_backbone(ctx.spec, ctx.train, cfg, ctx.device, folder, init,
                           f"distillbench run --method minimax --dataset {ctx.spec.name} (its fine-tune)",
                           MinimaxTuning(options))
    return folder
