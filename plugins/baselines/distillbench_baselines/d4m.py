"""D4M (Su et al., CVPR 2024, "D^4M: Dataset Distillation via Disentangled Diffusion Model"), on D3HR's backbone.

Facts from suduo94/D4M@da35d10 (``distillation/gen_prototype.py``, ``gen_syn_image.py``): per class, encode the real
images to VAE latents (scaled posterior samples), cluster them with k-means into k = IPC prototypes
(online ``MiniBatchKMeans``, random_state 0), and generate one image per prototype by img2img: noise the
prototype once to the first kept step of a 50-step schedule with strength 0.7 (the last 35 steps) and
denoise with classifier-free guidance.

On a class-conditional DiT (the reference file's suggestion, not the authors' code): the class label
replaces the text prompt and the null class the negative prompt; deterministic DDIM (eta 0) replaces the
checkpoint's PNDM sampler; guidance defaults to 4.0 (D4M's 8 was a Stable Diffusion text scale); the
backbone is D3HR's (same cache, same ``train-backbone`` command).  Deviations: the posterior sample and
the img2img noise are seeded; all of a class's latents are clustered in one ``KMeans`` fit by default
(``kmeans=minibatch`` for the official online variant, whose leftover-buffer bug is not reproduced).
"""
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import Distiller, UsageError, check_finite, derive_seed, option


@dataclass(frozen=True)
class Options:
    backbone: Optional[str] = option(None, "diffusers DiT pipeline folder; default: D3HR's backbone of the dataset")
    strength: float = option(0.7, "img2img strength: the fraction of the schedule noised and denoised")
    guidance: float = option(4.0, "classifier-free guidance scale")
    num_inference_steps: int = option(50, "points of the DDIM grid")
    kmeans: Literal["full", "minibatch"] = option("full", "k-means of the class latents: full, or MiniBatchKMeans")
    km_expand: int = option(1, "minibatch chunks of km_expand * IPC latents (the ImageNet script's 1)")
    encode: Literal["sample", "mean"] = option("sample", "VAE posterior: a seeded sample, or its mean")
    batch_size: int = option(256, "images per model call")
    amp: Literal["bf16", "fp16", "fp32"] = option("bf16", "autocast of the model calls: bf16 where native, fp16 "
                                                          "on CUDA, or fp32")

    def __post_init__(self):
        if not 0 < self.strength <= 1:
            raise UsageError(f"option strength={self.strength} must lie in (0, 1]")
        if min(self.num_inference_steps, self.km_expand, self.batch_size) < 1:
            raise UsageError("options num_inference_steps, km_expand and batch_size must be at least 1")


def prototypes(latents, k: int, method: str, km_expand: int, seed: int):
    """k-means centroids ``[k, d]`` of ``latents [N, d]``."""
    import numpy as np
    import torch
    from sklearn.cluster import KMeans, MiniBatchKMeans
    data = latents.double().numpy()
    if method == "full":
        model = KMeans(n_clusters=k, random_state=seed % 2**31, n_init="auto").fit(data)
    else:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed % 2**31, batch_size=km_expand * k, n_init="auto")
        for chunk in np.array_split(data, max(1, len(data) // (km_expand * k))):
            model.partial_fit(chunk)
    return torch.from_numpy(model.cluster_centers_).float()


class D4M(Distiller):
    name = "d4m"
    description = "D4M (CVPR 2024): k-means prototypes of class latents, img2img with the D3HR backbone"
    citation = ('Su et al., "D4M: Dataset Distillation via Disentangled Diffusion Model", CVPR 2024; '
                'code: github.com/suduo94/D4M')
    draws_real_images = False
    smoke_options = {"num_inference_steps": "10"}
    Options = Options

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        from distillbench.api import find_backbone, weights_fingerprint
        return {"backbone": weights_fingerprint(find_backbone(spec.name, self.options.backbone))}

    def setup(self, ctx) -> None:
        from distillbench.api import Backbone, ddim_grid, find_backbone
        self.backbone = Backbone.load(find_backbone(ctx.spec.name, self.options.backbone), ctx.device,
                                      self.options.amp)
        self.backbone.check(ctx.spec, ctx.train.num_classes, explicit=self.options.backbone is not None)
        grid = ddim_grid(self.options.num_inference_steps)
        kept = max(1, int(self.options.num_inference_steps * self.options.strength))
        self.path = grid[:kept][::-1]  # the last `kept` steps of the descending schedule

    def distill_unit(self, unit, ctx):
        import torch
        from distillbench.api import BACKBONE_FIX, forward_noise
        (label,) = set(unit.labels)
        ipc = len(unit.slots)
        index = ctx.train.indices_of(label)
        if len(index) < ipc:
            raise UsageError(f"D4M clusters each class into IPC prototypes: class {label} has only {len(index)} images")
        generator = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, f"d4m/{unit.id}"))
        latents = torch.cat([self.backbone.encode(ctx.train.load(chunk), generator, self.options.encode).cpu()
                             for chunk in index.split(self.options.batch_size)])
        check_finite(latents, f"VAE latents of class {label}", BACKBONE_FIX)
        centres = prototypes(latents.flatten(1), ipc, self.options.kmeans, self.options.km_expand,
                             derive_seed(ctx.seed, unit.id))
        start = forward_noise(centres.view(ipc, *self.backbone.latent_shape).to(ctx.device),
                              float(self.backbone.alphas_cumprod[self.path[0]]), generator)
        return self.backbone.generate(start, label, self.path, self.options.guidance, ctx.spec.image_size,
                                      self.options.batch_size,
                                      lambda chunks: ctx.progress(chunks, desc=f"generating class {label}"))
