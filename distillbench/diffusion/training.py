"""Training the diffusion backbone: a small VAE and a class-conditional DiT trained (or fine-tuned) on one dataset
(D3HR's ``train-backbone``; a :class:`Tuning` changes what a fine-tune trains and minimises: Minimax's).

DiT follows the DiT recipe (Peebles & Xie, 2023; ``facebookresearch/DiT`` ``train.py``) scaled down:
epsilon-prediction MSE, linear betas 1e-4..0.02 over 1000 steps, uniform timesteps, class-label
dropout 0.1 (diffusers' ``LabelEmbedding``) so that classifier-free guidance works, AdamW, EMA weights
saved.  The VAE is an ``AutoencoderKL`` trained with an L1 + small-KL objective (no perceptual or
adversarial loss: enough for 32 px digits); its scaling factor is set to 1 / std of the training latents,
as Stable Diffusion's 0.18215 was.
"""
import copy
import json
import shutil
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillbench import atomic
from distillbench.accel import autocast
from distillbench.grid import tile_grid


@dataclass(frozen=True)
class BackboneConfig:
    vae_channels: str = "32,64,64"  # block widths; the latent side is image_size / 2^(blocks - 1)
    latent_channels: int = 4
    vae_epochs: int = 20
    vae_batch: int = 128
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    dit_layers: int = 4
    dit_heads: int = 4
    dit_head_dim: int = 32
    patch_size: int = 2
    dit_steps: int = 6000
    dit_batch: int = 128
    dit_lr: float = 3e-4
    ema_decay: float = 0.999
    seed: int = 0


def build_vae(cfg: BackboneConfig, image_size: int):
    from diffusers import AutoencoderKL
    widths = tuple(int(w) for w in cfg.vae_channels.split(","))
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(widths),
                         up_block_types=("UpDecoderBlock2D",) * len(widths), block_out_channels=widths,
                         layers_per_block=1, latent_channels=cfg.latent_channels, norm_num_groups=16,
                         sample_size=image_size, mid_block_add_attention=False)


def build_dit(cfg: BackboneConfig, latent_size: int, num_classes: int):
    from diffusers import DiTTransformer2DModel
    return DiTTransformer2DModel(num_attention_heads=cfg.dit_heads, attention_head_dim=cfg.dit_head_dim,
                                 in_channels=cfg.latent_channels, out_channels=cfg.latent_channels,
                                 num_layers=cfg.dit_layers, sample_size=latent_size, patch_size=cfg.patch_size,
                                 num_embeds_ada_norm=num_classes)


def ddpm_scheduler():
    from diffusers import DDIMScheduler
    return DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         clip_sample=False, set_alpha_to_one=False)


def _batches(n: int, batch: int, generator, steps: int):
    """``steps`` batches of indices, reshuffling after each pass."""
    done = 0
    while done < steps:
        for index in torch.randperm(n, generator=generator).split(batch):
            if done == steps:
                return
            if len(index) == batch or n < batch:
                yield index
                done += 1


def train_vae(vae, images, cfg: BackboneConfig, progress):
    """L1 reconstruction + KL on images in [-1, 1]."""
    order = torch.Generator().manual_seed(cfg.seed)
    generator = torch.Generator(device=images.device).manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
    steps = cfg.vae_epochs * max(1, len(images) // cfg.vae_batch)
    vae.train()
    bar = progress(_batches(len(images), cfg.vae_batch, order, steps), "VAE", steps)
    for index in bar:
        x = images[index.to(images.device)]
        with autocast(x.device.type):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator=generator)).sample
            loss = F.l1_loss(recon.float(), x) + cfg.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return vae.eval()


def fine_tune_start(source, num_classes: int):
    """A DiT of the init's architecture (DiT-XL/2 stays DiT-XL/2) with a label table for ``num_classes``
    plus the null label, holding every init tensor whose name and shape match (the table may not)."""
    from diffusers import DiTTransformer2DModel
    config = {k: v for k, v in source.config.items() if not k.startswith("_")}  # not the init's path
    dit = DiTTransformer2DModel.from_config({**config, "num_embeds_ada_norm": num_classes})
    own = dit.state_dict()
    dit.load_state_dict({k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape},
                        strict=False)
    return dit


@torch.no_grad()
def latent_moments(vae, images, size: int):
    """Posterior means and stds of all images (unscaled), each batch resized to the VAE's ``size`` first
    (bicubic, as :meth:`Backbone.encode` does: CIFAR through a 256 px DiT's VAE)."""
    means, stds = [], []
    batch = max(8, 500 * 32**2 // size**2)  # 500 images of 32 px at a time, as many pixels at larger sizes
    for chunk in images.split(batch):
        if chunk.shape[-1] != size:
            chunk = F.interpolate(chunk, size=(size, size), mode="bicubic", align_corners=False)
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


@dataclass
class DenoisingStep:
    """One batch of the DiT's training, as an objective reads it."""

    z0: torch.Tensor  # scaled clean latents
    noisy: torch.Tensor
    t: torch.Tensor
    eps: torch.Tensor  # the DiT's noise prediction, float32
    noise: torch.Tensor
    labels: torch.Tensor
    alphas: torch.Tensor  # alphas_cumprod at t

    def x0(self):
        """The predicted clean latents: (x_t - sqrt(1 - a) eps) / sqrt(a)."""
        a = self.alphas.view(-1, *[1] * (self.eps.dim() - 1))
        return (self.noisy - (1 - a).sqrt() * self.eps) / a.sqrt()


class Tuning:
    """What training changes and minimises: every weight of the DiT under the denoising (epsilon-MSE) loss.
    A fine-tune recipe subclasses it (Minimax: DiffFit's parameters, its minimax terms)."""

    def trainable(self, dit) -> list:
        return list(dit.parameters())

    def loss(self, step: DenoisingStep):
        return F.mse_loss(step.eps, step.noise)

    def finish(self, dit):
        """The trained (EMA) model as it is saved."""
        return dit

    def record(self) -> dict:
        return {}


def train_dit(dit, means, stds, labels, scale: float, cfg: BackboneConfig, progress, tuning: Tuning = Tuning()):
    """Epsilon-prediction on freshly sampled, scaled latents; returns the EMA model (``tuning.finish``ed)."""
    scheduler = ddpm_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod.to(means.device)
    order = torch.Generator().manual_seed(cfg.seed + 1)
    generator = torch.Generator(device=means.device).manual_seed(cfg.seed + 1)
    params = tuning.trainable(dit)
    ema = copy.deepcopy(dit).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(params, lr=cfg.dit_lr, weight_decay=0.0)
    dit.train()
    for index in progress(_batches(len(means), cfg.dit_batch, order, cfg.dit_steps), "DiT", cfg.dit_steps):
        index = index.to(means.device)
        z0 = (means[index] + stds[index] * torch.randn(means[index].shape, generator=generator,
                                                       device=means.device)) * scale
        noise = torch.randn(z0.shape, generator=generator, device=z0.device)
        t = torch.randint(0, 1000, (len(index),), generator=generator, device=z0.device)
        noisy = scheduler.add_noise(z0, noise, t)
        with autocast(z0.device.type):
            pred = dit(noisy, timestep=t, class_labels=labels[index]).sample
        pred = pred[:, : z0.shape[1]].float()  # a DiT-XL init's learned-variance channels: unused by DDIM, not trained
        loss = tuning.loss(DenoisingStep(z0, noisy, t, pred, noise, labels[index], alphas_cumprod[t]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), dit.parameters()):
                e.lerp_(p, 1 - cfg.ema_decay)
    return tuning.finish(ema)


def drop_source_paths(folder) -> None:
    """Remove the ``_name_or_path`` that diffusers writes into the config of a component loaded from a
    folder (a fine-tune's VAE): a local path, which would make the backbone's checksum depend on where its
    init lived.  The init is recorded in ``distillbench.json`` instead."""
    for path in folder.glob("*/config.json"):
        config = json.loads(path.read_text())
        if config.pop("_name_or_path", None) is not None:
            atomic.write_json(path, config)


def save_pipeline(folder, dit, vae, info: dict) -> None:
    """Write the diffusers pipeline folder next to ``folder``, then rename it into place."""
    from diffusers import DiTPipeline
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    DiTPipeline(transformer=dit, vae=vae, scheduler=ddpm_scheduler()).save_pretrained(str(tmp))
    drop_source_paths(tmp)
    atomic.write_json(tmp / "distillbench.json", info)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def sample_grid(backbone, num_classes: int, per_class: int, size: int, guidance: float, seed: int):
    """One row of fresh DDIM samples per class (50 steps), as a uint8 grid image."""
    from distillbench.diffusion.ddim import ddim_grid, guided, sample
    labels = torch.arange(num_classes).repeat_interleave(per_class).to(backbone.device)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), *backbone.latent_shape), generator=generator).to(backbone.device)
    grid = ddim_grid()[::-1]
    alphas = backbone.alphas_cumprod[grid].tolist()
    z0 = sample(guided(backbone.eps, labels, backbone.null_label, guidance), x, grid, alphas)
    return tile_grid(backbone.decode(z0, size), per_class)


def train_backbone(spec, train, cfg: BackboneConfig, device: str, folder, init, command: str,
                   tuning: Tuning = Tuning()) -> dict:
    """Train a VAE and a DiT on ``train`` (or fine-tune the pipeline folder ``init`` as ``tuning`` says), save the
    pipeline at ``folder`` with its record (which says the ``command`` that made it) and a grid of samples
    (``samples.png``); return the record."""
    from distillbench import __version__, distributed
    from distillbench.diffusion.backbone import Backbone
    from distillbench.distilled import png_bytes
    progress = distributed.progress
    images = (train.load(torch.arange(len(train))).float() / 127.5 - 1).to(device)
    labels = train.targets.to(device)
    torch.manual_seed(cfg.seed)
    source = Backbone.load(init, device) if init else None
    vae = source.vae if source else train_vae(build_vae(cfg, spec.image_size).to(device), images, cfg, progress)
    means, stds = latent_moments(vae, images, source.image_size if source else spec.image_size)
    if source is None:  # as Stable Diffusion's 0.18215: scaled latents of unit variance
        vae.register_to_config(scaling_factor=1 / float((means.var() + stds.pow(2).mean()).sqrt()))
    scale = vae.config.scaling_factor
    dit = (fine_tune_start(source.transformer, train.num_classes) if source
           else build_dit(cfg, means.shape[-1], train.num_classes)).to(device)
    ema = train_dit(dit.requires_grad_(True), means, stds, labels, scale, cfg, progress, tuning)
    info = {"dataset": spec.name, "num_classes": train.num_classes, "image_size": spec.image_size,
            "config": cfg.__dict__, "tuning": tuning.record(), "init": _init_record(source), "scaling_factor": scale,
            "train_fingerprint": train.fingerprint(), "distillbench_version": __version__, "command": command}
    save_pipeline(folder, ema, vae.requires_grad_(False), info)
    grid = sample_grid(Backbone.load(folder, device), train.num_classes, 10, spec.image_size, 4.0, cfg.seed)
    atomic.write_bytes(folder / "samples.png", png_bytes(grid))
    return info


def _init_record(source):
    """Where a fine-tune started: the init's path, checksum and own record (its command and config,
    and so on back along a chain of fine-tunes)."""
    if source is None:
        return None
    from distillbench.diffusion.backbone import weights_fingerprint
    return {"path": str(source.path), "fingerprint": weights_fingerprint(source.path), "info": source.info()}
