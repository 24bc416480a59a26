"""The d3hr method through the CLI, with a tiny backbone trained here on digits (mechanics, not quality)."""
import json
import shutil

import pytest

from distillbench.testing import invoke
from distillbench.testing import png_bytes_of

FAST = ["--option", "m=64", "--option", "num_inference_steps=10", "--option", "inversion_steps=6"]


def run_d3hr(root, model_cache, *extra, ipc=2):
    return invoke("run", "--method", "d3hr", "--dataset", "digits", "--ipc", ipc, *FAST, *extra, "--root", root,
                  env={"DISTILLBENCH_CACHE": str(model_cache)})


def only_run(root):
    (run_dir,) = [p for p in (root / "runs").iterdir() if not p.name.endswith(".partial")]
    return run_dir


def test_backbone_folder_is_a_diffusers_pipeline_with_samples(model_cache):
    folder = model_cache / "d3hr" / "backbones" / "digits"
    assert (folder / "model_index.json").is_file() and (folder / "samples.png").read_bytes()[:4] == b"\x89PNG"
    info = json.loads((folder / "distillbench.json").read_text())
    assert info["dataset"] == "digits" and "train-backbone --dataset digits" in info["command"]


def test_same_seed_same_bytes_and_stats_regenerate_the_same_set(model_cache, tmp_path):
    first = run_d3hr(tmp_path / "a", model_cache)
    assert first.exit_code == 0, first.output
    assert run_d3hr(tmp_path / "b", model_cache).exit_code == 0
    a, b = only_run(tmp_path / "a"), only_run(tmp_path / "b")
    assert png_bytes_of(a) and png_bytes_of(a) == png_bytes_of(b)
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["notes"]["d3hr"]["inversion_timestep"] == 500 and len(manifest["notes"]["d3hr_selection"]) == 10
    regenerated = invoke("d3hr", "generate", "--stats", a / "stats.safetensors", "--ipc", "2", *FAST,
                         "--root", tmp_path / "c", env={"DISTILLBENCH_CACHE": str(model_cache)})
    assert regenerated.exit_code == 0, regenerated.output
    assert png_bytes_of(only_run(tmp_path / "c")) == png_bytes_of(a)
    bigger = invoke("d3hr", "generate", "--stats", a / "stats.safetensors", "--ipc", "3", *FAST,
                    "--root", tmp_path / "d", env={"DISTILLBENCH_CACHE": str(model_cache)})
    assert bigger.exit_code == 0 and len(png_bytes_of(only_run(tmp_path / "d"))) == 30


def test_runs_differing_in_ipc_or_sampling_map_the_data_once(model_cache, root):
    assert run_d3hr(root, model_cache, ipc=2).exit_code == 0
    (mapped,) = (root / "scratch" / "shared" / "d3hr-stats").iterdir()
    written = {p.name: p.stat().st_mtime_ns for p in mapped.glob("*.safetensors")}
    assert len(written) == 10
    for extra in (["--option", "sampling=random"], []):
        assert run_d3hr(root, model_cache, *extra, ipc=3).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in mapped.glob("*.safetensors")} == written  # read, not redone
    sets = [p for p in (root / "runs").iterdir()]
    assert len(sets) == 3 and len({(p / "stats.safetensors").read_bytes() for p in sets}) == 1
    assert run_d3hr(root, model_cache, "--seed", "1", ipc=2).exit_code == 0  # the seed draws the encodings
    assert len(list((root / "scratch" / "shared" / "d3hr-stats").iterdir())) == 2


def test_ipc_one_drops_std_and_skew_and_says_so(model_cache, root):
    assert run_d3hr(root, model_cache, ipc=1).exit_code == 0
    notes = json.loads((only_run(root) / "manifest.json").read_text())["notes"]["d3hr"]
    assert notes["score_terms_dropped"] == "std, skewness undefined for IPC 1"


@pytest.mark.parametrize("ablation", [["mapping=ddpm"], ["sampling=random"], ["score=mean", "invert_guided=false"]])
def test_ablations_run(model_cache, root, ablation):
    result = run_d3hr(root, model_cache, *[a for opt in ablation for a in ("--option", opt)])
    assert result.exit_code == 0, result.output
    assert json.loads((only_run(root) / "manifest.json").read_text())["options"][ablation[0].split("=")[0]] \
        == ablation[0].split("=")[1]


def test_missing_backbone_names_the_command(tmp_path, root):
    result = run_d3hr(root, tmp_path / "empty-cache")
    assert result.exit_code == 2
    assert "distillbench d3hr train-backbone --dataset digits" in result.stderr and "backbone=PATH" in result.stderr


def test_backbone_mismatch_is_refused_before_work(model_cache, root, tmp_path):
    from PIL import Image
    digits_backbone = model_cache / "d3hr" / "backbones" / "digits"
    mislabelled = tmp_path / "cache"
    (mislabelled / "d3hr" / "backbones").mkdir(parents=True)
    (mislabelled / "d3hr" / "backbones" / "mnist5k").symlink_to(digits_backbone)  # found by name: refused
    env = {"DISTILLBENCH_CACHE": str(mislabelled)}
    implicit = invoke("run", "--method", "d3hr", "--dataset", "mnist5k", "--ipc", "1", "--root", root, env=env)
    assert implicit.exit_code == 2 and "was trained on 'digits', not 'mnist5k'" in implicit.stderr
    for split in ("train", "val"):  # eleven classes: one more than the backbone knows
        for c in range(11):
            (tmp_path / split / f"c{c:02d}").mkdir(parents=True)
            Image.new("RGB", (64, 64)).save(tmp_path / split / f"c{c:02d}" / "0.png")
    wider = invoke("run", "--method", "d3hr", "--dataset", "imagefolder", "--data-dir", tmp_path, "--ipc", "1",
                   "--option", f"backbone={digits_backbone}", "--root", root, env=env)
    assert wider.exit_code == 2 and "knows 10 classes but dataset 'imagefolder' has 11" in wider.stderr
    for split in ("train", "val"):  # ten classes, but 64 px images for a 32 px backbone
        shutil.rmtree(tmp_path / split / "c10")
    larger = invoke("run", "--method", "d3hr", "--dataset", "imagefolder", "--data-dir", tmp_path, "--ipc", "1",
                    "--option", f"backbone={digits_backbone}", "--root", root, env=env)
    assert larger.exit_code == 2 and "makes 32 px images but dataset 'imagefolder' is 64 px" in larger.stderr
    assert not any((root / "runs").glob("*/manifest.json"))


def test_bad_option_values(model_cache, root):
    result = run_d3hr(root, model_cache, "--option", "inversion_steps=60")
    assert result.exit_code == 2 and "inversion_steps=60 must lie in 2..10" in result.stderr


def test_interrupted_run_resumes_from_checkpointed_classes(model_cache, tmp_path, monkeypatch):
    from distillbench.method import RunContext
    from distillbench.runner import run_units
    from distillbench.plugins import registry
    from distillbench_d3hr.method import D3HR
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(model_cache))
    spec = registry("dataset").get("digits")
    train = spec.load("train")
    overrides = {"m": "64", "num_inference_steps": "10", "inversion_steps": "6"}

    def ctx(name):
        return RunContext(spec=spec, train=train, ipc=2, seed=0, device="cpu", scratch=tmp_path / name / "scratch",
                          shared=tmp_path / name / "shared")

    class Counts(D3HR):
        mapped = []

        def map_class(self, label, ctx):
            type(self).mapped.append(label)
            return super().map_class(label, ctx)

    class Dies(Counts):
        def map_class(self, label, ctx):
            if label == 4:
                raise KeyboardInterrupt
            return super().map_class(label, ctx)

    reference = run_units(D3HR.from_overrides(overrides).for_dataset(spec), ctx("ref"), tmp_path / "ref" / "out", {})
    with pytest.raises(KeyboardInterrupt):
        run_units(Dies.from_overrides(overrides).for_dataset(spec), ctx("run"), tmp_path / "run" / "out", {})
    assert Counts.mapped == [0, 1, 2, 3]
    Counts.mapped.clear()
    (tmp_path / "run" / "out.partial" / ".units" / "class-00003.json").unlink()  # as if killed mid-class 3
    resumed = run_units(Counts.from_overrides(overrides).for_dataset(spec), ctx("run"), tmp_path / "run" / "out", {})
    assert Counts.mapped == [4, 5, 6, 7, 8, 9]  # class 3's statistics were checkpointed before the kill
    assert png_bytes_of(resumed.path) == png_bytes_of(reference.path)
    assert (resumed.path / "stats.safetensors").read_bytes() != b""


def fine_tune(source, cache, *overrides):
    result = invoke("d3hr", "train-backbone", "--dataset", "digits", "--init", source, "--set", "dit_steps=2",
                    *overrides, "--force", env={"DISTILLBENCH_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    return cache / "d3hr" / "backbones" / "digits"


def test_train_backbone_fine_tunes_from_init(model_cache, tmp_path):
    source = model_cache / "d3hr" / "backbones" / "digits"
    folder = fine_tune(source, tmp_path)
    info = json.loads((folder / "distillbench.json").read_text())
    assert info["init"]["path"] == str(source) and info["init"]["fingerprint"].startswith("sha256:")
    assert info["init"]["info"]["command"].startswith("distillbench d3hr train-backbone --dataset digits")
    old = json.loads((source / "vae" / "config.json").read_text())["scaling_factor"]
    assert info["scaling_factor"] == old  # the init's VAE is kept as it is
    config = json.loads((folder / "transformer" / "config.json").read_text())
    assert config == json.loads((source / "transformer" / "config.json").read_text())  # not the default sizes
    assert not any("_name_or_path" in json.loads(p.read_text()) for p in folder.glob("*/config.json"))


def test_fine_tuning_keeps_a_larger_inits_architecture_and_resolution(tmp_path):
    """As CIFAR-10 from DiT-XL/2-256: a 64 px, 12-class init with learned-variance outputs, on 32 px digits."""
    import torch
    from diffusers import DiTTransformer2DModel

    from distillbench.diffusion.backbone import Backbone
    from distillbench.diffusion.training import BackboneConfig, build_vae, save_pipeline
    torch.manual_seed(0)
    cfg = BackboneConfig(vae_channels="16,16,16,16")
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=12)
    source = tmp_path / "init"
    save_pipeline(source, dit, build_vae(cfg, 64), {})
    folder = fine_tune(source, tmp_path / "cache", "--set", "dit_lr=0")
    tuned = Backbone.load(folder)
    assert tuned.image_size == 64 and tuned.num_classes == 10 and tuned.transformer.config.out_channels == 8
    kept = {k: v for k, v in dit.state_dict().items() if "class_embedder" not in k}
    assert all(torch.equal(tuned.transformer.state_dict()[k], v) for k, v in kept.items())


def test_recipe_official_selects_the_codes_settings_where_options_are_unset():
    from distillbench.plugins import registry
    from distillbench_d3hr.method import D3HR
    spec = registry("dataset").get("digits")
    official = D3HR.from_overrides({"recipe": "official"}).for_dataset(spec).options
    assert (official.lambda_skew, official.skew_axis, official.m, official.sampling_offset, official.t1_floor,
            official.amp) == (0.1, "features", 100_000_000, 1, True, "fp16")
    paper = D3HR.from_overrides({}).for_dataset(spec).options
    assert (paper.lambda_skew, paper.skew_axis, paper.m, paper.sampling_offset, paper.t1_floor, paper.amp) == (
        0.5, "members", 1_000_000, 0, False, "bf16")
    mixed = D3HR.from_overrides({"recipe": "official", "lambda_skew": "0.3"}).for_dataset(spec).options
    assert mixed.lambda_skew == 0.3 and mixed.skew_axis == "features"


def test_the_official_recipe_runs_and_says_so(model_cache, root):
    result = run_d3hr(root, model_cache, "--option", "recipe=official", "--option", "m=64")
    assert result.exit_code == 0, result.output
    manifest = json.loads((only_run(root) / "manifest.json").read_text())
    assert manifest["options"]["t1_floor"] is True and manifest["options"]["sampling_offset"] == 1
    assert set(manifest["options_from_recipe"]) == {"lambda_skew", "skew_axis", "sampling_offset", "t1_floor", "amp"}
    assert manifest["notes"]["d3hr"]["options_follow"].startswith("official")
    assert manifest["notes"]["precision"] == "fp32"  # fp16 autocast is CUDA's; a CPU runs fp32


def test_file_images_are_encoded_from_the_original_at_the_backbones_size(model_cache, tmp_path):
    """The official code encodes Resize(256) + CenterCrop(256) of each ImageNet file; here an image folder read
    at 8 px is encoded from its 40 x 30 originals at the backbone's size, never upsampled from 8 px."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import center_crop, pil_to_tensor, resize

    from distillbench.api import RunContext, registry
    from distillbench.datasets import FileImageSet
    from distillbench_d3hr.method import D3HR
    files = []
    for k in range(2):
        pixels = torch.randint(0, 256, (30, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(k))
        files.append(tmp_path / f"{k}.png")
        Image.fromarray(pixels.numpy()).save(files[-1])
    train = FileImageSet(files, [0, 0], ["a"], 8, tmp_path)
    spec = registry("dataset").get("digits")
    method = D3HR.from_overrides({"backbone": str(model_cache / "d3hr" / "backbones" / "digits"), "m": "64",
                                  "num_inference_steps": "10", "inversion_steps": "6"}).for_dataset(spec)
    ctx = RunContext(spec, train, 1, 0, "cpu", tmp_path / "scratch", tmp_path / "shared")
    method.setup(ctx)
    size, encoded = method.backbone.image_size, []
    assert size > 8
    encode = method.backbone.encode
    method.backbone.encode = lambda images, *args: encoded.append(images) or encode(images, *args)
    method.map_class(0, ctx)
    expected = [center_crop(resize(pil_to_tensor(Image.open(f)), size, antialias=True), size) for f in files]
    assert torch.equal(torch.cat(encoded), torch.stack(expected))
