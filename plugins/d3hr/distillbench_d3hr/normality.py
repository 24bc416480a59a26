"""How Gaussian the mapped latents are, and how well the mapping inverts: pure functions over tensors (the
paper's inversion-step analysis; ``distillbench d3hr analyse``)."""
import torch


def moments_per_dimension(latents):
    """Sample skewness and excess kurtosis of every dimension of ``latents [N, D]`` over its N samples
    (the biased moment estimators g1 = m3 / m2^1.5 and g2 = m4 / m2^2 - 3), in float64."""
    x = latents.flatten(1).to(torch.float64)
    centred = x - x.mean(0)
    m2 = centred.pow(2).mean(0)
    skewness = centred.pow(3).mean(0) / m2.pow(1.5)
    kurtosis = centred.pow(4).mean(0) / m2.pow(2) - 3
    return skewness, kurtosis


def normality(latents) -> dict:
    """Mean |skewness| and mean |excess kurtosis| over the dimensions: both 0 for a Gaussian."""
    skewness, kurtosis = moments_per_dimension(latents)
    return {"abs_skewness": float(skewness.abs().mean()), "abs_excess_kurtosis": float(kurtosis.abs().mean())}


def relative_error(reconstructed, original) -> float:
    """||reconstructed - original||^2 / ||original||^2 over the whole batch."""
    original = original.to(torch.float64)
    return float((reconstructed.to(torch.float64) - original).pow(2).sum() / original.pow(2).sum())
