"""``distillbench d3hr analyse``: its measures, and its tables and plots through the store on digits (a tiny
backbone; mechanics, not the paper's findings)."""
import csv

import pytest
import torch

import distillbench

from distillbench.testing import invoke
from distillbench_d3hr.analyse import ABLATION, ANALYSES
from distillbench_d3hr.normality import moments_per_dimension, normality, relative_error

FAST = ["--option", "m=16", "--option", "num_inference_steps=5", "--option", "inversion_steps=4"]


def test_normality_is_zero_for_gaussian_latents_and_large_for_skewed_ones():
    generator = torch.Generator().manual_seed(0)
    gaussian = torch.randn(20000, 8, generator=generator)
    assert normality(gaussian)["abs_skewness"] < 0.05 and normality(gaussian)["abs_excess_kurtosis"] < 0.1
    exponential = -torch.rand(200000, 3, generator=generator, dtype=torch.float64).log()
    skewness, kurtosis = moments_per_dimension(exponential)
    assert torch.allclose(skewness, torch.full((3,), 2.0, dtype=torch.float64), atol=0.1)  # Exp(1): 2 and 6
    assert torch.allclose(kurtosis, torch.full((3,), 6.0, dtype=torch.float64), atol=0.6)


def test_relative_error_is_the_energy_of_the_difference():
    original = torch.tensor([[3.0, 4.0]])
    assert relative_error(original, original) == 0 and relative_error(original * 0, original) == 1.0
    assert relative_error(original + torch.tensor([[0.0, 2.5]]), original) == pytest.approx(0.25)


def analyse(root, model_cache, *extra):
    return invoke("d3hr", "analyse", "--dataset", "digits", "--ipc", "1", "--repeats", "1", "--set", "epochs=1",
                  "--normality-images", "8", "--seeds", "2", "--students", "conv3", "--storage-ipcs", "1,2", *FAST,
                  "--option", "d4m:num_inference_steps=5", *extra, "--root", root,
                  env={"DISTILLBENCH_CACHE": str(model_cache)})


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_analysis_writes_its_table_and_plot_and_resumes_from_the_store(model_cache, root):
    result = analyse(root, model_cache)
    assert result.exit_code == 0, result.output
    folder = root / "analyses" / "d3hr" / "digits"
    for name in ANALYSES:
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "Paper" in (folder / f"{name}.md").read_text() and f"{name}: {folder / name}.md" in result.output
    assert [r["variant"] for r in rows(folder / "ablation.csv")] == list(ABLATION)
    inversion = rows(folder / "inversion.csv")
    assert [int(r["t"]) for r in inversion] == [0, 400, 600, 800]  # the paper's 20, 31, 40 of 50 on a 5-point grid
    assert float(inversion[0]["round_trip_error"]) == 0 and all(float(r["round_trip_error"]) > 0 for r in inversion[1:])
    assert all(0 <= float(r["mean"]) <= 100 for r in inversion[1:])
    assert [float(r["sigma_scale"]) for r in rows(folder / "variance.csv")] == [0.5, 1.0, 1.5]
    robustness = rows(folder / "robustness.csv")
    assert [r["method"] for r in robustness] == ["d3hr", "d4m"] and all(r["n"] == "2" for r in robustness)
    assert robustness[0]["welch_p_vs_d3hr"] == "" and 0 <= float(robustness[1]["welch_p_vs_d3hr"]) <= 1
    storage = rows(folder / "storage.csv")
    assert [int(r["ipc"]) for r in storage] == [1, 2]
    assert all(r["regenerated_identical"] == "True" for r in storage)  # any IPC from the statistics alone
    assert len({r["stats_bytes"] for r in storage}) == 1 and int(storage[0]["stats_bytes"]) > 0
    assert int(storage[0]["png_bytes"]) < int(storage[1]["png_bytes"])
    assert [r["student"] for r in rows(folder / "cross_arch.csv")] == ["conv3"]
    runs, evaluations = sorted(p.name for p in (root / "runs").iterdir()), len(distillbench.results(root))
    again = analyse(root, model_cache, "--only", "variance,robustness")
    assert again.exit_code == 0 and "robustness:" in again.output
    assert sorted(p.name for p in (root / "runs").iterdir()) == runs  # sets and students reused
    assert len(distillbench.results(root)) == evaluations


@pytest.mark.parametrize("bad, message", [(["--only", "ablation,tables"], "--only tables: no such analysis"),
                                          (["--storage-ipcs", "1,x"], "--storage-ipcs 1,x: expected a range A-B or a list")])
def test_bad_analysis_arguments_are_usage_errors(model_cache, root, bad, message):
    result = analyse(root, model_cache, *bad)
    assert result.exit_code == 2 and message in result.output
