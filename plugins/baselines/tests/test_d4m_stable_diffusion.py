"""D4M on its own generator: a Stable Diffusion img2img pipeline, by folder or Hub id, offline.

The tests build a tiny pipeline (CLIP text encoder and BPE tokenizer, UNet, VAE, PNDM) with random weights
and save it with ``save_pretrained``, the real on-disk layout of ``stable-diffusion-v1-5``."""
import json

import pytest
import torch

from distillbench.api import UsageError
from distillbench.testing import copied_into_hub_cache, finished_sets, invoke, png_bytes_of, run_subprocess

RUN = ("run", "--method", "d4m", "--dataset", "digits", "--ipc", "2", "--option", "resolution=16", "--option",
       "num_inference_steps=10")


def byte_vocabulary() -> list:
    """CLIP's byte-level BPE alphabet (GPT-2's printable stand-ins for the 256 bytes), as word pieces and word
    ends: a complete vocabulary with no merges."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    return chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]


def save_tiny_stable_diffusion(folder):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    vocab = byte_vocabulary()
    words = folder.parent / "bpe"
    words.mkdir()
    (words / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (words / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, projection_dim=16,
                                        bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1,
                                        pad_token_id=len(vocab) - 1))
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)  # SD v1.5's
    StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text, unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
        tokenizer=CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=77),
        requires_safety_checker=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")


def run_d4m(cache, root, *options):
    pairs = [a for option in options for a in ("--option", option)]
    result = invoke(*RUN, *pairs, "--root", root, env={"DISTILLBENCH_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    return result


def test_d4m_on_a_stable_diffusion_folder_records_the_generator(pipeline, tmp_path):
    from distillbench.api import weights_fingerprint
    run_d4m(tmp_path / "cache", tmp_path, f"generator={pipeline}")
    (out,) = finished_sets(tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["models"] == {"generator": weights_fingerprint(pipeline)}
    assert manifest["notes"]["d4m"]["generator"] == str(pipeline)
    assert manifest["notes"]["d4m"]["guidance"] == 8.0 and "substitute" not in manifest["notes"]["d4m"]
    assert len(png_bytes_of(out)) == 2 * 10


def test_the_prompts_and_the_negative_prompt_condition_the_images(pipeline, tmp_path):
    classes = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (tmp_path / "prompts.txt").write_text("".join(f"{name}\tdigit {i}\n" for i, name in enumerate(classes)))
    variants = {"class names": (), "again": (), "prompts file": (f"prompts={tmp_path / 'prompts.txt'}",),
                "negative prompt": ("negative_prompt=blurry",)}
    images = {}
    for name, options in variants.items():
        run_d4m(tmp_path / "cache", tmp_path / name, f"generator={pipeline}", *options)
        (out,) = finished_sets(tmp_path / name)
        images[name] = sorted(png_bytes_of(out).values())
    assert images["again"] == images["class names"]
    assert len({tuple(v) for v in images.values()}) == 3


def test_img2img_denoises_the_last_strength_of_the_schedule_from_the_latents(pipeline):
    """D4M's latents2img: no VAE encoding of the prototype, noised once at the first kept step, then the last
    int(steps * strength) steps of the checkpoint's scheduler, each a guided (doubled-batch) UNet call."""
    from distillbench_baselines.d4m import Options
    from distillbench_baselines.stable_diffusion import StableDiffusion
    sd = StableDiffusion.load(Options(generator=str(pipeline), resolution=16, amp="fp32"), ["a", "b"], "cpu")
    seen, encoded = [], []
    sd.pipe.unet.register_forward_pre_hook(lambda m, args, kw: seen.append((int(args[1]), len(args[0]))),
                                           with_kwargs=True)
    sd.pipe.vae.encoder.register_forward_hook(lambda *a: encoded.append(1))
    images = sd.img2img(torch.randn(3, *sd.latent_shape), 1, 12, torch.Generator().manual_seed(0))
    assert images.shape == (3, 3, 12, 12) and images.dtype == torch.uint8 and not encoded
    sd.pipe.scheduler.set_timesteps(50)
    kept = sd.pipe.scheduler.timesteps[50 - int(50 * 0.7):].tolist()
    assert seen == [(t, 6) for t in kept]


def test_prompts_must_name_every_class_and_wordnet_ids_are_refused(tmp_path):
    from distillbench_baselines.stable_diffusion import read_prompts
    (tmp_path / "two.txt").write_text("tench, Tinca tinca\ngoldfish\n")
    assert read_prompts(tmp_path / "two.txt", ["n01440764", "n01443537"]) == ["tench, Tinca tinca", "goldfish"]
    with pytest.raises(UsageError, match="has 2 prompts but the dataset has 3 classes"):
        read_prompts(tmp_path / "two.txt", ["a", "b", "c"])
    with pytest.raises(UsageError, match="WordNet ids.*imagenet_classes.txt"):
        read_prompts(None, ["n01440764", "n01443537"])


def test_a_stable_diffusion_hub_id_loads_from_the_cache_offline_or_fails_in_one_line(pipeline, tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "DISTILLBENCH_CACHE": str(tmp_path)}
    hub_id = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    missing = run_subprocess(*RUN, "--option", f"generator={hub_id}", "--root", tmp_path / "root", env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stderr.startswith(f"Error: '{hub_id}' is not in the Hugging Face cache; fetch it once with "
                                     f"`distillbench download {hub_id}`")
    copied_into_hub_cache(tmp_path / "hub", hub_id, pipeline)
    found = run_subprocess(*RUN, "--option", f"generator={hub_id}", "--root", tmp_path / "root", env=env)
    assert found.returncode == 0, found.stderr
    (out,) = finished_sets(tmp_path / "root")
    assert json.loads((out / "manifest.json").read_text())["notes"]["d4m"]["generator"] == hub_id
