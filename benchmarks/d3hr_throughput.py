"""Inversion and generation throughput of D3HR's batched loops.

Reference, measured in the same run: the same DDIM steps one image at a time (batch 1), as the official
code samples (``group_sampling.py`` calls ``sample`` per latent).  Ours: the whole class in one batch,
inference mode, bf16 autocast where native, no host syncs inside the loop.

    python benchmarks/d3hr_throughput.py                        # the backbone for mnist5k (shipped or cached)
    python benchmarks/d3hr_throughput.py --dit-xl --device cuda # a DiT-XL/2-shaped model with random weights

Prints images/s for inversion (30 steps, guided) and generation (30 steps, guided + VAE decode).
"""
import argparse

import torch

from distillbench.accel import timed
from distillbench.diffusion.backbone import Backbone, find_backbone
from distillbench.diffusion.ddim import ddim_grid, guided, invert, sample


def dit_xl_backbone(device: str, layers: int = 28, width: int = 1152, size: int = 256) -> Backbone:
    """DiT-XL/2 at 256 px (28 layers, hidden 1152 in 16 heads, learned sigma) and an SD-shaped VAE, random
    weights; ``layers``, ``width`` and ``size`` shrink it for a quick run."""
    from diffusers import AutoencoderKL, DiTTransformer2DModel
    from distillbench.diffusion.training import ddpm_scheduler
    dit = DiTTransformer2DModel(num_attention_heads=16, attention_head_dim=width // 16, in_channels=4, out_channels=8,
                                num_layers=layers, sample_size=size // 8, patch_size=2, num_embeds_ada_norm=1000)
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(128, 256, 512, 512) if size >= 256 else (32, 32, 64, 64),
                        layers_per_block=2, latent_channels=4, sample_size=size)
    return Backbone(dit.to(device).eval(), vae.to(device).eval(), ddpm_scheduler(), path=None, device=device)


def measure(backbone, batch: int, per_image: bool, guidance: float = 4.0):
    device = backbone.device
    grid = ddim_grid(50)[:31]
    alphas = backbone.alphas_cumprod[grid].tolist()
    z0 = torch.randn(batch, *backbone.latent_shape, device=device)
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    chunks = [(z0[i:i + 1], labels[i:i + 1]) for i in range(batch)] if per_image else [(z0, labels)]

    def run_inversion():
        for z, y in chunks:
            invert(guided(backbone.eps, y, backbone.null_label, guidance), z, grid, alphas)

    def run_generation():
        for z, y in chunks:
            out = sample(guided(backbone.eps, y, backbone.null_label, guidance), z, grid[::-1], alphas[::-1])
            backbone.decode(out, backbone.image_size)

    run_generation()  # warm-up
    return batch / timed(run_inversion, device), batch / timed(run_generation, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dit-xl", action="store_true")
    args = parser.parse_args()
    backbone = (dit_xl_backbone(args.device) if args.dit_xl
                else Backbone.load(find_backbone(args.dataset), args.device))
    name = "DiT-XL/2-shaped (random weights)" if args.dit_xl else f"small backbone of {args.dataset}"
    ref_inv, ref_gen = measure(backbone, args.batch, per_image=True)
    inv, gen = measure(backbone, args.batch, per_image=False)
    print(f"{name}, {args.batch} images, 30 guided DDIM steps, {args.device} ({torch.get_num_threads()} threads)")
    print(f"inversion:  batch-1 reference {ref_inv:8.2f} images/s | whole batch {inv:8.2f} images/s | "
          f"ratio {inv / ref_inv:.1f}x")
    print(f"generation: batch-1 reference {ref_gen:8.2f} images/s | whole batch {gen:8.2f} images/s | "
          f"ratio {gen / ref_gen:.1f}x")


if __name__ == "__main__":
    main()
