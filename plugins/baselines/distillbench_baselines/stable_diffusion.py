"""D4M's own generator: Stable Diffusion img2img through diffusers, started from latent prototypes.

Facts from suduo94/D4M@da35d10:

- ``distillation/dataset_utils.py`` L18-21: the real images are ``Resize((512, 512))`` in [0, 1]; the pipeline's
  image processor maps them to [-1, 1].
- ``distillation/gen_prototype.py`` L75-79: the clustered latent is the VAE posterior sample times the scaling
  factor (0.18215).
- ``distillation/gen_syn_image.py`` L64-69, ``gen_syn_image_imgnt.sh``: the prompt is the class's text (the line of
  ``label-prompt/*.txt`` before a tab, ``gen_label_list`` L101-112), the negative prompt "cartoon, anime, painting",
  strength 0.7, guidance 8, 50 steps on the checkpoint's own scheduler (PNDM for SD v1.5); the image is resized to
  224 px.

diffusers' ``StableDiffusionImg2ImgPipeline`` takes 4-channel latents as its ``image``: it skips the VAE, keeps the
last ``int(steps * strength)`` steps and noises the latents once at the first of them, which is what D4M's
``StableDiffusionLatents2ImgPipeline`` (a modified copy of it) does with ``is_init=True``.  Deviations: the
posterior sample and the noise are seeded (the official code is not), prototypes of a class are generated in
batches, and the safety checker is off (it blacks out the images it flags).
"""
from pathlib import Path

import torch
import torch.nn.functional as F

from distillbench.api import UsageError, autocast, pipeline_folder

def read_prompts(path, class_names) -> list:
    """One prompt per class: the lines of a D4M label-prompt file (text before a tab), else the class names."""
    if path is None:
        if all(name[:1] == "n" and name[1:].isdigit() for name in class_names):
            raise UsageError("the class names are WordNet ids, not prompts; pass --option prompts=FILE with one "
                             "class name per line (D4M's distillation/label-prompt/imagenet_classes.txt)")
        return list(class_names)
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"prompts file {file} does not exist; pass a text file with one prompt per class")
    prompts = [line.strip().split("\t")[0] for line in file.read_text().splitlines() if line.strip()]
    if len(prompts) != len(class_names):
        raise UsageError(f"prompts file {file} has {len(prompts)} prompts but the dataset has {len(class_names)} "
                         "classes; give one line per class, in label order")
    return prompts


class StableDiffusion:
    """D4M's generator, loaded: ``encode`` real images to scaled latents, ``img2img`` a class from latents."""

    def __init__(self, pipe, options, prompts: list, device: str):
        self.pipe, self.options, self.prompts, self.device = pipe, options, prompts, device

    @classmethod
    def load(cls, options, class_names, device: str) -> "StableDiffusion":
        from diffusers import StableDiffusionImg2ImgPipeline
        from diffusers.utils import logging
        prompts = read_prompts(options.prompts, class_names)
        logging.disable_progress_bar()
        path = pipeline_folder(options.generator)
        try:
            pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
                str(path), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                low_cpu_mem_usage=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot load a Stable Diffusion img2img pipeline from {path}: {exc}") from None
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), options, prompts, device)

    @property
    def latent_shape(self) -> tuple:
        vae = self.pipe.vae.config
        return (vae.latent_channels, *[self.options.resolution // 2 ** (len(vae.block_out_channels) - 1)] * 2)

    def source(self, train):
        return train.at_size(self.options.resolution, squash=True)  # dataset_utils.py L18-21: Resize((512, 512))

    def encode(self, images_u8, generator):
        """uint8 images -> scaled latents, resized to ``resolution`` first (D4M's ``Resize((512, 512))``)."""
        x = images_u8.to(self.device).float() / 127.5 - 1
        if x.shape[-1] != self.options.resolution:  # in-memory sets; file sets arrive at it (``source``)
            x = F.interpolate(x, size=(self.options.resolution,) * 2, mode="bilinear", antialias=True,
                              align_corners=False)
        with torch.inference_mode(), autocast(self.device, self.options.amp):
            dist = self.pipe.vae.encode(x).latent_dist
            z = dist.sample(generator=generator) if self.options.encode == "sample" else dist.mean
        return z.float() * self.pipe.vae.config.scaling_factor

    def img2img(self, latents, label: int, size: int, generator):
        """uint8 images ``[b, 3, size, size]`` of class ``label`` from scaled latents (bicubic resize to ``size``)."""
        o, n = self.options, len(latents)
        with torch.inference_mode(), autocast(self.device, o.amp):
            x = self.pipe(prompt=[self.prompts[label]] * n, image=latents, strength=o.strength,
                          guidance_scale=o.guidance_scale, negative_prompt=[o.negative_prompt] * n,
                          num_inference_steps=o.num_inference_steps, generator=generator,
                          output_type="pt").images.float() * 255
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        return x.clamp(0, 255).round().to(torch.uint8).cpu()
