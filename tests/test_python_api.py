"""The Python API (``import distillbench``): run, evaluate, results, compare, load_set; and the CLI commands go
through it."""
import pytest
import torch

import distillbench
from distillbench import python_api
from distillbench.errors import UsageError
from distillbench.testing import invoke

FAST = {"epochs": 2, "eval_every": 1, "eval_after": 0}


def test_a_notebook_session_runs_evaluates_and_reads_back_what_the_cli_would(model_cache, root, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(model_cache))
    distilled = distillbench.run("random", "digits", ipc=2, root=root)
    assert (distilled.path / "grid.png").is_file() and distilled.manifest["ipc"] == 2
    again = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--root", root)
    assert f"run {distilled.manifest['run_id']}" in again.output  # the same run as the CLI's

    records = distillbench.evaluate(distilled, overrides=FAST, repeats=2, root=root)
    assert list(records["seed"]) == [0, 1] and records["final_acc"].between(0, 1).all()
    by_id = distillbench.evaluate(distilled.manifest["run_id"], overrides=FAST, repeats=2, root=root)
    assert by_id["reused"].all()  # the same identities: stored earlier

    rows = distillbench.results(root)
    assert len(rows) == 2 and {"protocol_resolved", "teachers", "train_seed", "options"} <= set(rows.columns)
    assert rows["protocol_resolved"].map(lambda p: p["settings"]["epochs"]).tolist() == [2, 2]
    table = distillbench.compare(root, dataset="digits")
    (cell,) = table.to_dict("records")
    assert cell["method"] == "random" and cell["n"] == 2 and cell["marked"]
    assert cell["mean"] == pytest.approx(records["final_acc"].mean() * 100)

    images, labels = distillbench.load_set(distilled.manifest["run_id"], root=root)
    assert images.dtype == torch.uint8 and images.shape == (20, 3, 32, 32) and labels.tolist() == sorted(labels)
    dataset = distillbench.load_set(distilled.path, as_dataset=True)
    assert len(dataset) == 20 and torch.equal(dataset[3][0], images[3].float() / 255)


def test_method_options_are_keywords_and_bad_ones_are_the_clis_errors(model_cache, root, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(model_cache))
    distilled = distillbench.run("sre2l", "digits", ipc=1, iterations=2, root=root)
    assert distilled.manifest["options"]["iterations"] == 2
    with pytest.raises(UsageError, match="unknown option 'no_such' for method 'sre2l'"):
        distillbench.run("sre2l", "digits", ipc=1, no_such=1, root=root)
    with pytest.raises(UsageError, match="no evaluations stored"):
        distillbench.compare(root)


def test_the_cli_commands_call_the_python_api(model_cache, root, monkeypatch):
    calls = []
    for name in ("evaluate", "distill_with_grid", "stored_evaluations"):
        original = getattr(python_api, name)
        monkeypatch.setattr(python_api, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    fast = [a for key, value in FAST.items() for a in ("--set", f"{key}={value}")]
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--evaluate", *fast,
                  "--repeats", "1", "--root", root, env=env).exit_code == 0
    assert invoke("compare", "--root", root, env=env).exit_code == 0
    assert calls == ["distill_with_grid", "evaluate", "stored_evaluations"]
