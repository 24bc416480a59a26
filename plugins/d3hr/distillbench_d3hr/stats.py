"""Per-class, per-dimension Gaussian statistics, accumulated in float64 without keeping the latents.

Batches are merged with Chan et al.'s parallel update of (count, mean, M2),
so the result equals the two-pass mean and unbiased variance of all latents
seen (the official code: ``torch.mean`` and ``torch.var`` (N - 1) over the class).
"""
from dataclasses import dataclass
from pathlib import Path

import torch


class Moments:
    def __init__(self, dim: int):
        self.count = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dtype=torch.float64)

    def update(self, batch) -> None:
        """Add a batch ``[b, dim]`` of samples."""
        batch = batch.detach().to("cpu", torch.float64)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(0)
        batch_m2 = ((batch - batch_mean) ** 2).sum(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += batch_m2 + delta ** 2 * (self.count * n / total)
        self.count = total

    @property
    def variance(self):
        """Unbiased (N - 1) variance; zero for a single sample."""
        return self.m2 / max(self.count - 1, 1)


STATS_FILE = "stats.safetensors"


def write_stats(path, means, variances, counts, header: dict) -> None:
    """Per-class mean/variance ``[K, d]`` (float64) and counts ``[K]``, with a JSON header in the metadata."""
    import json

    from safetensors.torch import save

    from distillbench.api import atomic
    tensors = {"mean": means.to(torch.float64).contiguous(), "variance": variances.to(torch.float64).contiguous(),
               "count": torch.as_tensor(counts, dtype=torch.long)}
    atomic.write_bytes(path, save(tensors, metadata={"d3hr": json.dumps(header, sort_keys=True)}))


def read_header(path) -> dict:
    import json

    from safetensors import safe_open

    from distillbench.api import UsageError
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["d3hr"])
    except Exception as exc:
        raise UsageError(f"{path} is not a D3HR statistics file ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class ClassStats:
    """A statistics file, read: its header, every class's Gaussian and sample count, and its checksum."""

    header: dict
    means: torch.Tensor  # [K, d] float64
    variances: torch.Tensor  # [K, d] float64, unbiased
    counts: torch.Tensor  # [K]
    checksum: str


def read_stats(path) -> ClassStats:
    from safetensors.torch import load_file

    from distillbench.api import sha256_file
    header = read_header(path)
    tensors = load_file(str(path))
    return ClassStats(header, tensors["mean"], tensors["variance"], tensors["count"], sha256_file(Path(path)))
