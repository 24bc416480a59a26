"""Group sampling (D3HR, Section 4.3): draw m candidate groups of n latents from N(mu, sigma^2)
and keep the group whose statistics best match the fitted Gaussian.

Score of a group x_1..x_n (per dimension d; norms run over dimensions):

    L = lambda_mean * ||mean(x) - mu||_2 + lambda_std * ||std(x) - sigma||_2 + lambda_skew * ||skew(x)||_2

- ``mean``: the sample mean over the n members;
- ``std``: the unbiased sample standard deviation, sqrt(sum (x - mean)^2 / (n - 1)) (the official code's
  ``torch.std``); dropped for n < 2;
- ``skew``: the adjusted Fisher-Pearson skewness G1 = sqrt(n (n - 1)) / (n - 2) * m3 / m2^(3/2), with m_k the
  biased central moments over the n members (per dimension, as the paper states); dropped for n < 3.
  ``skew_axis="features"`` selects the official code's variant instead (``group_sampling.py``
  ``skewness_batch``): members are standardised per dimension, then the cube-sum runs over the D
  dimensions of each member with the correction D / ((D - 1)(D - 2)), giving one value per member.

Defaults follow the paper: lambdas (1, 1, 0.5), m = 10^6; the official code uses lambda_skew = 0.1,
the features axis and 10^8 candidates.

Candidates are drawn as x = mu + sigma * z with z standard normal, so only z is ever materialised:
mean(x) - mu = sigma * mean(z), std(x) - sigma = sigma * (std(z) - 1), and skewness is unchanged by the
affine map.  They come in chunks; chunk k is drawn from a generator seeded by (seed, class, k), so
memory does not grow with m and candidate i is reproducible from (seed, class, i) alone.

Scoring a chunk in eager PyTorch costs more than drawing it (several passes over the chunk); for large
searches the score is compiled with ``torch.compile`` into one fused loop (about 15 s once per process
on a CPU), which makes it a few percent of the drawing time (``benchmarks/group_sampling.py``).
"""
import functools
import warnings
from dataclasses import dataclass

import torch

from distillbench.api import derive_seed


@dataclass(frozen=True)
class ScoreWeights:
    mean: float = 1.0
    std: float = 1.0
    skew: float = 0.5
    skew_axis: str = "members"  # or "features" (the official code)


def group_scores(z, sigma, weights: ScoreWeights):
    """Scores ``[c]`` of ``c`` candidate groups ``z: [c, n, d]`` (standard normal draws)."""
    n, d = z.shape[1], z.shape[2]
    mean = z.mean(1)
    score = weights.mean * torch.linalg.vector_norm(sigma * mean, dim=1)
    if n < 2:
        return score
    centred = z - mean.unsqueeze(1)
    m2 = centred.square().mean(1)
    std = (m2 * (n / (n - 1))).sqrt()
    score += weights.std * torch.linalg.vector_norm(sigma * (std - 1), dim=1)
    if n < 3 or weights.skew == 0:
        return score
    if weights.skew_axis == "features":
        standardised = centred / std.unsqueeze(1)
        skew = standardised.pow(3).sum(2) * (d / ((d - 1) * (d - 2)))  # [c, n]
    else:
        m3 = centred.pow(3).mean(1)
        skew = (n * (n - 1)) ** 0.5 / (n - 2) * m3 / m2.pow(1.5)  # [c, d]
    return score + weights.skew * torch.linalg.vector_norm(skew, dim=1)


CPU_CHUNK_BYTES = 4 << 20  # small enough to stay in cache while it is scored
CUDA_CHUNK_BYTES = 256 << 20  # large enough to keep the GPU busy


def chunk_size_for(n: int, d: int, device="cpu") -> int:
    """Candidates per chunk such that one chunk of float32 draws fits the device's budget."""
    budget = CUDA_CHUNK_BYTES if str(device).startswith("cuda") else CPU_CHUNK_BYTES
    return max(1, budget // (n * d * 4))


def draw_chunk(seed: int, key: str, chunk: int, size: int, n: int, d: int, device="cpu"):
    generator = torch.Generator(device=device).manual_seed(derive_seed(seed, f"{key}/chunk{chunk}"))
    return torch.randn(size, n, d, generator=generator, device=device)


def candidate(seed: int, key: str, index: int, n: int, d: int, chunk_size: int, device="cpu"):
    """Candidate ``index`` (standard normal ``[n, d]``), regenerated from (seed, key, index) alone."""
    chunk, row = divmod(index, chunk_size)
    return draw_chunk(seed, key, chunk, chunk_size, n, d, device)[row]


COMPILE_ABOVE = 2_000_000_000  # drawn values; below this, compiling costs more time than it saves


_compile_failed = False


@functools.lru_cache(maxsize=1)
def _compiled_scores():
    return torch.compile(group_scores, dynamic=False)


def scorer(compile_scores: bool):
    """``group_scores``, compiled when asked and possible (without a C++ toolchain: eager, with a warning)."""
    if not compile_scores:
        return group_scores

    def score(z, sigma, weights):
        global _compile_failed
        if not _compile_failed:
            try:
                return _compiled_scores()(z, sigma, weights)
            except Exception as exc:
                _compile_failed = True
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); scoring eagerly")
        return group_scores(z, sigma, weights)
    return score


@dataclass(frozen=True)
class Selection:
    index: int
    score: float
    z: torch.Tensor  # [n, d] standard normal draws of the winner
    chunk_size: int  # with (seed, key, index), what regenerates the winner

    def latents(self, mu, sigma):
        return mu + sigma * self.z


def select_group(mu, sigma, n: int, m: int, seed: int, key: str, weights: ScoreWeights = ScoreWeights(),
                 chunk_size=None, progress=None, compile_scores=None) -> Selection:
    """The best of ``m`` candidate groups of ``n`` latents from N(mu, sigma^2); ties go to the earliest.

    ``compile_scores``: None compiles the score when the search draws more than ``COMPILE_ABOVE`` values."""
    d = mu.numel()
    chunk_size = chunk_size or chunk_size_for(n, d, mu.device)
    score = scorer(m * n * d > COMPILE_ABOVE if compile_scores is None else compile_scores)
    sigma = sigma.to(torch.float32)
    rows = torch.arange(chunk_size, device=mu.device)
    best_score = torch.full((), float("inf"), device=mu.device)
    best_index = torch.zeros((), dtype=torch.long, device=mu.device)
    chunks = range((m + chunk_size - 1) // chunk_size)
    for k in progress(chunks) if progress else chunks:
        # Every chunk is scored whole (one shape: no recompiles); rows past m are masked out.
        scores = score(draw_chunk(seed, key, k, chunk_size, n, d, mu.device), sigma, weights)
        scores = torch.where(rows < m - k * chunk_size, scores, float("inf"))
        value, row = scores.min(0)
        better = value < best_score  # kept on the device: no host sync per chunk
        best_score = torch.where(better, value, best_score)
        best_index = torch.where(better, row + k * chunk_size, best_index)
    index = int(best_index)
    return Selection(index, float(best_score), candidate(seed, key, index, n, d, chunk_size, mu.device), chunk_size)


def random_group(mu, sigma, n: int, seed: int, key: str):
    """The ``sampling=random`` ablation: one group drawn from N(mu, sigma^2), no selection."""
    return mu + sigma.to(torch.float32) * draw_chunk(seed, key, 0, 1, n, mu.numel(), mu.device)[0]
