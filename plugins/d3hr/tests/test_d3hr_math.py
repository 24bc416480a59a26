"""D3HR's pure steps on synthetic tensors: DDIM moves, inversion, moments, group-sampling scores and selection."""
import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from distillbench_d3hr.group_sampling import (ScoreWeights, candidate, chunk_size_for, group_scores, random_group,
                                              select_group)
from distillbench.diffusion.ddim import ddim_grid, ddim_move, invert, sample
from distillbench_d3hr.stats import Moments
from distillbench.diffusion.training import ddpm_scheduler

ALPHAS = ddpm_scheduler().alphas_cumprod.to(torch.float64)


def test_grid_is_the_leading_ddim_grid():
    grid = ddim_grid(50)
    assert grid[:3] == [0, 20, 40] and grid[-1] == 980 and len(grid) == 50
    assert grid[30] == 600  # the paper's T = 31 of 50


def test_a_ddim_move_is_undone_by_the_reverse_move():
    x, eps = torch.randn(5, 16, dtype=torch.float64), torch.randn(5, 16, dtype=torch.float64)
    there = ddim_move(x, eps, 0.9, 0.4)
    assert torch.allclose(ddim_move(there, eps, 0.4, 0.9), x)


def gaussian_eps(s2):
    """The exact noise prediction for data ~ N(0, s2 I): eps*(x, t) = sqrt(1 - a) x / (a s2 + 1 - a)."""
    return lambda x, t: (1 - ALPHAS[t]) ** 0.5 * x / (ALPHAS[t] * s2 + 1 - ALPHAS[t])


def round_trip(z0, s2, steps):
    path = ddim_grid(steps)[: steps * 3 // 5 + 1]  # up to t = 600
    alphas = ALPHAS[path].tolist()
    zt = invert(gaussian_eps(s2), z0, path, alphas)
    return zt, sample(gaussian_eps(s2), zt, path[::-1], alphas[::-1]), alphas[-1]


def test_inversion_with_the_exact_model_maps_the_data_to_its_noised_law_and_back():
    torch.manual_seed(0)
    s2 = 0.25
    z0 = torch.randn(4000, 8, dtype=torch.float64) * s2 ** 0.5
    zt, back, alpha = round_trip(z0, s2, 50)
    assert zt.var().item() == pytest.approx(alpha * s2 + 1 - alpha, rel=0.05)  # the law of x_600
    error_50 = (back - z0).pow(2).mean().sqrt() / z0.std()
    assert error_50 < 0.1  # first-order DDIM error on a 50-step grid
    _, back_200, _ = round_trip(z0, s2, 200)
    assert (back_200 - z0).pow(2).mean().sqrt() / z0.std() < error_50 / 3  # and it vanishes as steps grow


def test_moments_equal_two_pass_mean_and_unbiased_variance():
    torch.manual_seed(0)
    data = torch.randn(1000, 7, dtype=torch.float64) * 3 + 5
    moments = Moments(7)
    for chunk in data.split(137):
        moments.update(chunk.float())
    assert moments.count == 1000
    assert torch.allclose(moments.mean, data.float().double().mean(0), atol=1e-10)
    assert torch.allclose(moments.variance, data.float().double().var(0, unbiased=True), rtol=1e-9)


def direct_score(x, mu, sigma, w: ScoreWeights):
    """The score written out on x itself (numpy/scipy), as a check of the z-space shortcut."""
    n = x.shape[0]
    score = w.mean * np.linalg.norm(x.mean(0) - mu)
    if n >= 2:
        score += w.std * np.linalg.norm(x.std(0, ddof=1) - sigma)
    if n >= 3:
        if w.skew_axis == "members":
            skew = scipy_stats.skew(x, axis=0, bias=False)
        else:
            d = x.shape[1]
            zs = (x - x.mean(0)) / x.std(0, ddof=1)
            skew = (zs ** 3).sum(1) * d / ((d - 1) * (d - 2))
        score += w.skew * np.linalg.norm(skew)
    return score


@pytest.mark.parametrize("n", [1, 2, 3, 10])
@pytest.mark.parametrize("axis", ["members", "features"])
def test_group_score_matches_the_direct_formula(n, axis):
    torch.manual_seed(n)
    d = 12
    mu, sigma = torch.randn(d), torch.rand(d) + 0.5
    z = torch.randn(4, n, d, dtype=torch.float64)
    weights = ScoreWeights(1.0, 0.7, 0.5, axis)
    got = group_scores(z, sigma.double(), weights)
    for i in range(4):
        x = (mu.double() + sigma.double() * z[i]).numpy()
        assert got[i].item() == pytest.approx(direct_score(x, mu.double().numpy(), sigma.double().numpy(), weights),
                                              rel=1e-6)


def test_selection_is_reproducible_and_candidates_regenerate():
    mu, sigma = torch.zeros(32), torch.ones(32)
    a = select_group(mu, sigma, n=5, m=3000, seed=7, key="class-3", chunk_size=256)
    b = select_group(mu, sigma, n=5, m=3000, seed=7, key="class-3", chunk_size=256)
    assert a.index == b.index and torch.equal(a.z, b.z)
    assert torch.equal(candidate(7, "class-3", a.index, 5, 32, 256), a.z)
    scores = group_scores(torch.stack([candidate(7, "class-3", i, 5, 32, 256) for i in range(3000)]), sigma,
                          ScoreWeights())
    assert scores.argmin().item() == a.index and scores.min().item() == pytest.approx(a.score)
    other = select_group(mu, sigma, n=5, m=3000, seed=7, key="class-4", chunk_size=256)
    assert not torch.equal(other.z, a.z)


def test_the_chosen_group_beats_the_first_percentile_and_improves_with_m():
    torch.manual_seed(0)
    mu, sigma = torch.randn(64), torch.rand(64) + 0.1
    weights = ScoreWeights()
    random_scores = torch.stack([group_scores((random_group(mu, sigma, 10, s, "k") - mu).div(sigma)[None], sigma,
                                              weights)[0] for s in range(2000)])
    chosen = {m: select_group(mu, sigma, 10, m, seed=1, key="k", chunk_size=chunk_size_for(10, 64)).score
              for m in (10, 100, 1000, 10000)}
    assert chosen[10000] < torch.quantile(random_scores, 0.01).item()
    assert chosen[10] >= chosen[100] >= chosen[1000] >= chosen[10000] and chosen[10000] < chosen[10]


def test_the_official_floored_loop_calls_the_model_at_t0_too_and_ends_at_t1():
    """With a constant noise prediction a DDIM move keeps x0_hat, so where a loop ends is readable off x: the plain
    loop ends at alpha[0] after len - 1 calls.  The official one reaches alpha[1] from t = 20, then calls the
    model at t = 0 and moves that latent as if it sat at alpha[0], back to alpha[1]."""
    from distillbench.diffusion.ddim import sample_floored
    alphas = torch.linspace(0.9999, 0.02, 1000, dtype=torch.float64)
    x0, noise = torch.randn(3, 5, dtype=torch.float64), torch.full((3, 5), 0.3, dtype=torch.float64)
    path = [60, 40, 20, 0]
    start = alphas[60].sqrt() * x0 + (1 - alphas[60]).sqrt() * noise
    calls = []

    def eps(x, t):
        calls.append(t)
        return noise

    floored = sample_floored(eps, start, path, alphas, 20)
    assert calls == [60, 40, 20, 0]
    a0, a1 = alphas[0], alphas[1]
    at_t1 = a1.sqrt() * x0 + (1 - a1).sqrt() * noise
    assert torch.allclose(floored, (a1 / a0).sqrt() * (at_t1 - (1 - a0).sqrt() * noise) + (1 - a1).sqrt() * noise)
    calls.clear()
    plain = sample(eps, start, path, alphas[path].tolist())
    assert calls == [60, 40, 20] and torch.allclose(plain, alphas[0].sqrt() * x0 + (1 - alphas[0]).sqrt() * noise)
