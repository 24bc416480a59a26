"""D3HR's claims on real data (mnist5k) with the small backbone that ships in the package."""
import pytest
import torch

from distillbench.plugins import registry
from distillbench.diffusion.backbone import SHIPPED, Backbone
from distillbench_d3hr.group_sampling import ScoreWeights, group_scores, select_group
from distillbench.diffusion.ddim import ddim_grid, guided, invert, sample

pytestmark = pytest.mark.skipif(not (SHIPPED / "mnist5k" / "model_index.json").is_file(),
                                reason="the shipped mnist5k backbone is missing")
PATH = ddim_grid(50)[:31]  # t = 0 .. 600, the paper's T = 31


@pytest.fixture(scope="module")
def mapped():
    """Class 3 of mnist5k: VAE latents z0 and their DDIM inversions zt (unguided and guided)."""
    backbone = Backbone.load(SHIPPED / "mnist5k", "cpu", amp=False)
    train = registry("dataset").get("mnist5k").load("train")
    z0 = backbone.encode(train.load(train.indices_of(3)), mode="mean")
    labels = torch.full((len(z0),), 3)
    alphas = backbone.alphas_cumprod[PATH].tolist()
    inversions = {g: invert(guided(backbone.eps, labels, backbone.null_label, g), z0, PATH, alphas)
                  for g in (1.0, 4.0)}
    return backbone, z0, inversions, labels, alphas


def test_inversion_round_trip_reconstructs_the_latents(mapped):
    backbone, z0, inversions, labels, alphas = mapped
    back = sample(guided(backbone.eps, labels, backbone.null_label, 1.0), inversions[1.0], PATH[::-1], alphas[::-1])
    error = (back - z0).pow(2).mean().sqrt()
    spread = z0.std(0).pow(2).mean().sqrt()  # how far the class's latents lie from each other
    assert error < 0.1 * spread, f"round-trip RMSE {error:.4f} vs spread {spread:.4f}"


def moments(x):
    x = x.flatten(1)
    z = (x - x.mean(0)) / x.std(0)
    return z.pow(3).mean(0).abs().mean().item(), (z.pow(4).mean(0) - 3).abs().mean().item()


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_inverted_latents_are_closer_to_gaussian_than_vae_latents(mapped, guidance):
    _, z0, inversions, _, _ = mapped
    skew_before, kurt_before = moments(z0)
    skew_after, kurt_after = moments(inversions[guidance])
    assert skew_after < skew_before and kurt_after < kurt_before, (skew_before, skew_after, kurt_before, kurt_after)


def test_group_sampling_on_real_class_statistics(mapped):
    _, _, inversions, _, _ = mapped
    zt = inversions[4.0].flatten(1)
    mu, sigma = zt.mean(0), zt.std(0)
    chosen = select_group(mu, sigma, n=10, m=20000, seed=0, key="class-3")
    draws = torch.randn(2000, 10, mu.numel(), generator=torch.Generator().manual_seed(1))
    random_scores = group_scores(draws, sigma, ScoreWeights())
    assert chosen.score < torch.quantile(random_scores, 0.01).item()
