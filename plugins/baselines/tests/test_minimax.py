"""Minimax's own steps: the two terms and their memories, DiffFit's scales, the ancestral sampler it uses."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from distillbench.api import DenoisingStep, Tuning, ancestral_sample, respaced_grid
from distillbench.testing import invoke
from distillbench_baselines.minimax import Options
from distillbench_baselines.minimax_tuning import (Memory, MinimaxTuning, cosine_matrix, difffit_trainable, diversity,
                                                   fold_scales, representativeness)


def test_cosine_matrix_is_pairwise_cosine_similarity():
    a, b = torch.randn(3, 4, 2, 2), torch.randn(5, 4, 2, 2)
    expected = F.cosine_similarity(a.flatten(1)[:, None], b.flatten(1)[None], dim=-1)
    assert torch.allclose(cosine_matrix(a, b), expected, atol=1e-6)


def test_terms_are_the_worst_pairs_over_the_classes_of_the_batch():
    memory = Memory(size=3)
    first = torch.randn(4, 8)
    labels = torch.tensor([0, 0, 1, 2])
    assert memory.terms(first, first + 1, labels) == (0, 0)  # no memory yet: no terms
    assert len(memory.real[0]) == 2 and torch.equal(memory.real[0][0], first[0] + 1)  # real: z0; generated: x0_hat
    x0 = torch.randn(3, 8)
    pos, neg = memory.terms(x0, x0, torch.tensor([0, 0, 3]))  # class 3 is new: counts in the divisor only
    real, generated = torch.stack((first[0] + 1, first[1] + 1)), first[:2]
    assert torch.isclose(pos, (1 - cosine_matrix(x0[:2], real).min()) / 2)
    assert torch.isclose(neg, cosine_matrix(x0[:2], generated).max() / 2)
    assert len(memory.real[0]) == 3 and torch.equal(memory.real[0][0], first[1] + 1)  # a FIFO of 3: the oldest left


def test_descending_the_terms_pulls_the_farthest_real_pair_and_pushes_the_nearest_generated_one():
    real, generated = torch.randn(6, 16), torch.randn(6, 16)
    x0 = torch.randn(2, 16, requires_grad=True)
    worst, nearest = cosine_matrix(x0, real).min(), cosine_matrix(x0, generated).max()
    (representativeness(x0, real) + diversity(x0, generated)).backward()
    with torch.no_grad():
        x0 -= 0.05 * x0.grad
        assert cosine_matrix(x0, real).min() > worst and cosine_matrix(x0, generated).max() < nearest


def tiny_dit():
    from diffusers import DiTTransformer2DModel
    torch.manual_seed(0)
    return DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
                                 num_layers=4, sample_size=4, patch_size=2, num_embeds_ada_norm=3).eval()


def dit_output(dit, x):
    with torch.no_grad():
        return dit(x, timestep=torch.tensor([10, 500]), class_labels=torch.tensor([0, 2])).sample


def test_difffit_scales_start_as_the_identity_and_fold_into_a_plain_dit():
    dit, x = tiny_dit(), torch.randn(2, 4, 4, 4)
    before = dit_output(dit, x)
    trainable = MinimaxTuning(Options()).trainable(dit)
    names = [n for n, p in dit.named_parameters() if p.requires_grad]
    assert len(trainable) == len(names) and all(difffit_trainable(n) for n in names)
    assert any(".scales." in n for n in names) and any("class_embedder" in n for n in names)
    assert not any(n.endswith("weight") and "class_embedder" not in n and ".scales." not in n for n in names)
    scaled = {n.split(".")[1] for n in names if ".scales." in n}
    assert scaled == {"0", "1"}  # the first half of the 4 blocks
    assert torch.allclose(dit_output(dit, x), before, atol=1e-6)
    with torch.no_grad():
        for name, param in dit.named_parameters():
            if ".scales." in name:
                param.uniform_(0.5, 1.5)
    scaled_output = dit_output(dit, x)
    assert not torch.allclose(scaled_output, before, atol=1e-3)
    plain = fold_scales(dit)
    assert not any(".scales." in n for n, _ in plain.named_parameters())
    assert torch.allclose(dit_output(plain, x), scaled_output, atol=1e-5)


def denoising_step(batch=4):
    z0, noise = torch.randn(batch, 4, 2, 2), torch.randn(batch, 4, 2, 2)
    alphas = torch.rand(batch) * 0.9 + 0.05
    noisy = alphas.sqrt().view(-1, 1, 1, 1) * z0 + (1 - alphas).sqrt().view(-1, 1, 1, 1) * noise
    return DenoisingStep(z0, noisy, torch.zeros(batch), noise + 0.1 * torch.randn_like(noise), noise,
                         torch.tensor([0, 1, 0, 1]), alphas)


def test_x0_hat_of_the_true_noise_is_the_clean_latent():
    step = denoising_step()
    step.eps = step.noise
    assert torch.allclose(step.x0(), step.z0, atol=1e-5)


def test_the_loss_is_the_denoising_loss_plus_the_weighted_terms():
    step = denoising_step()
    plain = Tuning().loss(step)
    assert MinimaxTuning(Options(lambda_pos=0, lambda_neg=0)).loss(step) == plain
    tuning = MinimaxTuning(Options(lambda_pos=0.5, lambda_neg=0.25))
    assert tuning.loss(step) == plain  # the first batch: empty memories
    memory = Memory(64)
    memory.terms(step.x0(), step.z0, step.labels)
    pos, neg = memory.terms(step.x0(), step.z0, step.labels)
    assert torch.isclose(tuning.loss(step), plain + 0.5 * pos + 0.25 * neg)


def test_the_respaced_grid_is_iddpm_s():
    grid = respaced_grid(50)
    assert len(grid) == 50 and grid[:4] == [0, 20, 41, 61] and grid[-1] == 999
    assert respaced_grid(1000) == list(range(1000)) and respaced_grid(2) == [0, 999]


@pytest.mark.parametrize("steps", [5, 50])
def test_ancestral_sampling_of_a_point_mass_ends_on_it(steps):
    """For data that is one point c, the exact eps makes x0_hat = c at every step: the chain ends at c whatever
    noise it drew on the way."""
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    c = torch.randn(1, 4, 2, 2, dtype=torch.float64)

    def eps(x, t):
        a = float(alphas_cumprod[t])
        return (x - a ** 0.5 * c) / (1 - a) ** 0.5
    x = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = ancestral_sample(eps, x, respaced_grid(steps)[::-1], alphas_cumprod, torch.Generator().manual_seed(1))
    assert torch.allclose(out, c.expand_as(out), atol=1e-8)


def test_ancestral_steps_add_the_posterior_noise():
    """With a zero eps, the step from t to s draws x_s = posterior mean + sqrt(posterior variance) * noise, and the
    last step (to the clean end) returns x0_hat = x_s / sqrt(a_s)."""
    alphas_cumprod = torch.tensor([0.9, 0.5], dtype=torch.float64)
    a_s, a_t = alphas_cumprod.tolist()
    out = ancestral_sample(lambda x, t: torch.zeros_like(x), torch.ones(1, 1, dtype=torch.float64), [1, 0],
                           alphas_cumprod, torch.Generator().manual_seed(0))
    beta = 1 - a_t / a_s
    mean = a_s ** 0.5 * beta / (1 - a_t) / a_t ** 0.5 + (1 - beta) ** 0.5 * (1 - a_s) / (1 - a_t)
    noise = torch.randn(1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(out, (mean + (beta * (1 - a_s) / (1 - a_t)) ** 0.5 * noise) / a_s ** 0.5)


def test_the_fine_tune_is_cached_by_its_own_options(model_cache, root):
    """Runs that differ only in how they sample share one fine-tuned backbone; a fine-tune option makes another."""
    def run(*options):
        pairs = [arg for o in ("steps=3", "num_inference_steps=4", *options) for arg in ("--option", o)]
        result = invoke("run", "--method", "minimax", "--dataset", "digits", "--ipc", "1", *pairs, "--root", root,
                        env={"DISTILLBENCH_CACHE": str(model_cache)})
        assert result.exit_code == 0, result.output
        return {p.name for p in (model_cache / "minimax").iterdir() if p.is_dir()}
    first = run()
    (run_dir,) = (root / "runs").iterdir()
    fine_tuned = json.loads((run_dir / "manifest.json").read_text())["notes"]["fine_tuned"]
    assert Path(fine_tuned["path"]).name in first and fine_tuned["fingerprint"].startswith("sha256:")
    assert run("sampler=ddim", "guidance=2") == first
    assert len(run("lambda_pos=0") - first) == 1
