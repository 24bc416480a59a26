"""D4M (Su et al., CVPR 2024, "D^4M: Dataset Distillation via Disentangled Diffusion Model").

Facts from suduo94/D4M@da35d10 (``distillation/gen_prototype.py``, ``gen_syn_image.py``): per class, encode the real
images to VAE latents (scaled posterior samples), cluster them with k-means into k = IPC prototypes
(online ``MiniBatchKMeans``, random_state 0), and generate one image per prototype by img2img: noise the
prototype once to the first kept step of a 50-step schedule with strength 0.7 (the last 35 steps) and
denoise with classifier-free guidance.

Two generators.  ``generator=`` a Stable Diffusion pipeline (Hub id or folder; the paper used v1.5) is D4M's own:
class-name prompts, guidance 8, the negative prompt (:mod:`distillbench_baselines.stable_diffusion`).
``generator=dit``, the default, is a recorded substitute on D3HR's class-conditional DiT (the reference file's
suggestion, not the authors' code): the class label replaces the text prompt and the null class the negative
prompt; deterministic DDIM (eta 0) replaces the checkpoint's PNDM sampler; guidance defaults to 4.0 (D4M's 8 is a
Stable Diffusion text scale); the backbone is D3HR's (same cache, same ``train-backbone`` command).  Deviations of
both: the posterior sample and the img2img noise are seeded; all of a class's latents are clustered in one
``KMeans`` fit by default (``kmeans=minibatch`` for the official online variant, whose leftover-buffer bug is not
reproduced).
"""
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import Distiller, UsageError, check_finite, derive_seed, option


@dataclass(frozen=True)
class Options:
    generator: str = option("dit", "dit: D3HR's class-conditional DiT, a substitute; or D4M's own, a Stable "
                                   "Diffusion pipeline: Hub id (stable-diffusion-v1-5/stable-diffusion-v1-5) or folder")
    backbone: Optional[str] = option(None, "dit: diffusers DiT pipeline folder; default: D3HR's backbone of the "
                                           "dataset")
    strength: float = option(0.7, "img2img strength: the fraction of the schedule noised and denoised")
    guidance: Optional[float] = option(None, "classifier-free guidance scale; default 8 with Stable Diffusion "
                                             "(D4M's), 4 with the DiT")
    prompts: Optional[str] = option(None, "Stable Diffusion: file of one prompt per class in label order (D4M's "
                                          "label-prompt files); default: the class names")
    negative_prompt: str = option("cartoon, anime, painting", "Stable Diffusion: the negative prompt (D4M's)")
    resolution: int = option(512, "Stable Diffusion: side the real images are resized to before encoding (D4M's)")
    num_inference_steps: int = option(50, "points of the DDIM grid")
    kmeans: Literal["full", "minibatch"] = option("full", "k-means of the class latents: full, or MiniBatchKMeans")
    km_expand: int = option(1, "minibatch chunks of km_expand * IPC latents (the ImageNet script's 1)")
    encode: Literal["sample", "mean"] = option("sample", "VAE posterior: a seeded sample, or its mean")
    batch_size: Optional[int] = option(None, "images per model call; default 256 with the DiT, 10 with Stable "
                                             "Diffusion at 512 px (D4M's)")
    amp: Literal["bf16", "fp16", "fp32"] = option("bf16", "autocast of the model calls: bf16 where native, fp16 "
                                                          "on CUDA, or fp32")

    def __post_init__(self):
        if not 0 < self.strength <= 1:
            raise UsageError(f"option strength={self.strength} must lie in (0, 1]")
        if min(self.num_inference_steps, self.km_expand, self.batch_size or 1, self.resolution) < 1:
            raise UsageError("options num_inference_steps, km_expand, batch_size and resolution must be at least 1")

    @property
    def stable_diffusion(self) -> bool:
        return self.generator != "dit"

    @property
    def guidance_scale(self) -> float:
        return self.guidance if self.guidance is not None else 8.0 if self.stable_diffusion else 4.0

    @property
    def chunk(self) -> int:
        return self.batch_size or (10 if self.stable_diffusion else 256)


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


class DiT:
    """The substitute generator: D3HR's backbone, img2img by deterministic DDIM from the class label."""

    def __init__(self, options, spec, num_classes: int, device: str):
        from distillbench.api import Backbone, ddim_grid, find_backbone
        self.options, self.device = options, device
        self.backbone = Backbone.load(find_backbone(spec.name, options.backbone), device, options.amp)
        self.backbone.check(spec, num_classes, explicit=options.backbone is not None)
        grid = ddim_grid(options.num_inference_steps)
        kept = max(1, int(options.num_inference_steps * options.strength))
        self.path = grid[:kept][::-1]  # the last `kept` steps of the descending schedule

    @property
    def latent_shape(self) -> tuple:
        return self.backbone.latent_shape

    def source(self, train):
        return train.at_size(self.backbone.image_size)

    def encode(self, images_u8, generator):
        return self.backbone.encode(images_u8, generator, self.options.encode)

    def img2img(self, latents, label: int, size: int, generator):
        from distillbench.api import forward_noise
        start = forward_noise(latents, float(self.backbone.alphas_cumprod[self.path[0]]), generator)
        return self.backbone.generate(start, label, self.path, self.options.guidance_scale, size, len(latents))


class D4M(Distiller):
    name = "d4m"
    description = "D4M (CVPR 2024): k-means prototypes of class latents, img2img (Stable Diffusion, or the D3HR DiT)"
    citation = ('Su et al., "D4M: Dataset Distillation via Disentangled Diffusion Model", CVPR 2024; '
                'code: github.com/suduo94/D4M')
    draws_real_images = False
    smoke_options = {"num_inference_steps": "10"}
    Options = Options

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        from distillbench.api import find_backbone, pipeline_folder, weights_fingerprint
        if self.options.stable_diffusion:
            return {"generator": weights_fingerprint(pipeline_folder(self.options.generator))}
        return {"backbone": weights_fingerprint(find_backbone(spec.name, self.options.backbone))}

    def setup(self, ctx) -> None:
        if self.options.stable_diffusion:
            from distillbench_baselines.stable_diffusion import StableDiffusion
            self.generator = StableDiffusion.load(self.options, ctx.train.class_names, ctx.device)
        else:
            self.generator = DiT(self.options, ctx.spec, ctx.train.num_classes, ctx.device)

    def notes(self, ipc: int) -> dict:
        o = self.options
        used = {"generator": o.generator, "guidance": o.guidance_scale, "batch_size": o.chunk}
        if o.stable_diffusion:
            return {"d4m": {**used, "deviations": "seeded posterior samples and noise; batched prototypes; no "
                                                  "safety checker"}}
        return {"d4m": {**used, "substitute": "D4M generates with Stable Diffusion img2img from class-name prompts "
                                              "(guidance 8, a negative prompt); this run used D3HR's class-"
                                              "conditional DiT (the class label, the null class, DDIM). For D4M's "
                                              "own, pass --option generator=stable-diffusion-v1-5/"
                                              "stable-diffusion-v1-5"}}

    def distill_unit(self, unit, ctx):
        import torch
        from distillbench.api import BACKBONE_FIX
        (label,) = set(unit.labels)
        ipc = len(unit.slots)
        index = ctx.train.indices_of(label)
        if len(index) < ipc:
            raise UsageError(f"D4M clusters each class into IPC prototypes: class {label} has only {len(index)} images")
        generator = torch.Generator(device=ctx.device).manual_seed(derive_seed(ctx.seed, f"d4m/{unit.id}"))
        source = self.generator.source(ctx.train)
        latents = torch.cat([self.generator.encode(images, generator).cpu()
                             for images in source.batches(index, self.options.chunk)])
        check_finite(latents, f"VAE latents of class {label}", BACKBONE_FIX)
        centres = prototypes(latents.flatten(1), ipc, self.options.kmeans, self.options.km_expand,
                             derive_seed(ctx.seed, unit.id))
        chunks = centres.view(ipc, *self.generator.latent_shape).to(ctx.device).split(self.options.chunk)
        return torch.cat([self.generator.img2img(chunk, label, ctx.spec.image_size, generator)
                          for chunk in ctx.progress(chunks, desc=f"generating class {label}")])
