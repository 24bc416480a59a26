"""The evaluation loop end to end on digits: teacher, protocols, store, compare, DD-Ranking."""
import shutil

import pytest
import torch

from distillbench.testing import invoke

FAST = ["--set", "epochs=2", "--set", "eval_every=1", "--set", "eval_after=0"]


def test_teacher_is_cached_with_accuracy_and_checksum(model_cache):
    import json
    meta = json.loads((model_cache / "teachers" / "digits-conv3.json").read_text())
    assert meta["accuracy"] > 0.3 and meta["sha256"].startswith("sha256:") and meta["arch"] == "conv3"
    again = invoke("train-teacher", "--dataset", "digits", "--arch", "conv3",
                   env={"DISTILLBENCH_CACHE": str(model_cache)})
    assert "teacher exists" in again.output


def test_missing_teacher_names_the_command(tmp_path, root):
    result = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--evaluate", "--root", root,
                    env={"DISTILLBENCH_CACHE": str(tmp_path)})
    assert result.exit_code == 2
    assert "distillbench train-teacher --dataset digits --arch conv3" in result.stderr


def test_run_evaluate_compare_with_ddranking(model_cache, root):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    for method_args in (["--protocol", "rded"], ["--protocol", "hard-label"]):
        result = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--evaluate",
                        "--repeats", "2", *method_args, *FAST, "--root", root, env=env)
        assert result.exit_code == 0, result.output
    assert result.output.count("random ipc=2 conv3 seed=") == 2
    run_id = next((root / "runs").iterdir()).name
    stored = invoke("evaluate", run_id, "--protocol", "stored-labels", "--repeats", "1", *FAST, "--root", root,
                    env=env)
    assert stored.exit_code == 0, stored.output
    assert len(list((root / "runs" / run_id).glob("soft_labels-*.safetensors"))) == 1
    full = invoke("evaluate", "full", "--dataset", "digits", "--protocol", "hard-label", "--repeats", "1", *FAST,
                  "--root", root, env=env)  # the same training as the sets' (a row of its own otherwise)
    assert full.exit_code == 0, full.output
    # A second "method": the same images as a bare ImageFolder, so that DD-Ranking has a method to rank.
    plain = root / "plain"
    shutil.copytree(root / "runs" / run_id, plain, ignore=shutil.ignore_patterns("*.json", "*.safetensors", "*.png"))
    for png in (root / "runs" / run_id).glob("*/*.png"):
        shutil.copy(png, plain / png.parent.name / png.name)
    for protocol in ("rded", "hard-label"):
        folder = invoke("evaluate", plain, "--dataset", "digits", "--protocol", protocol, "--repeats", "1", *FAST,
                        "--root", root, env=env)
        assert folder.exit_code == 0, folder.output

    from distillbench.store import Store
    df = Store(root).evaluations("digits")
    assert set(df["protocol"]) == {"rded", "hard-label", "stored-labels"}
    assert df["final_acc"].between(0, 1).all() and (df["best_acc"] >= df["final_acc"]).all()

    table = invoke("compare", "--dataset", "digits", "--plot", root / "curve.png", "--root", root)
    assert table.exit_code == 0, table.output
    assert "| protocol" in table.output and "random" in table.output and " ± " in table.output
    ranking = table.output.split("DD-Ranking")[1]
    assert "| imagefolder" in ranking and "LRS" in ranking
    assert (root / "curve.png").read_bytes()[:4] == b"\x89PNG"
    one = invoke("compare", "--dataset", "digits", "--protocol", "hard-label", "--root", root)
    assert one.exit_code == 0 and "| protocol" not in one.output and " ± " in one.output, one.output
    none = invoke("compare", "--dataset", "digits", "--protocol", "d3hr-cifar", "--root", root)
    assert none.exit_code == 2 and "(stored: digits under hard-label, digits under rded" in none.stderr

    shown = invoke("show", run_id, "--root", root).output.splitlines()
    own = df[df["run_id"] == run_id].sort_values(["protocol", "seed"])
    assert shown[0] == "evaluations (5):" and len(own) == 5
    assert shown[1:6] == [f"  conv3  {row.protocol}  seed {row.seed}  final {row.final_acc * 100:.2f}%  "
                          f"best {row.best_acc * 100:.2f}%" for row in own.itertuples()]
    assert shown[6] == "{" and f'"run_id": "{run_id}"' in "\n".join(shown[6:])


def test_methods_name_shows_description_citation_and_every_option_with_its_help():
    import dataclasses

    from distillbench.plugins import registry
    for method in registry("method").items():
        shown = invoke("methods", method.name).output.splitlines()
        assert shown[0] == f"{method.name}: {method.description}" and shown[2] == f"citation: {method.citation}"
        for field, line in zip(dataclasses.fields(method.Options), shown[4:], strict=True):
            assert line.split()[0] == field.name and line.endswith(field.metadata["help"])


def test_user_supplied_teacher_formats(model_cache, tmp_path, root):
    state = torch.load(model_cache / "teachers" / "digits-conv3.pt", weights_only=True)["model"]
    rded_style = tmp_path / "rded.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, rded_style)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(rded_style.read_bytes()[:1000])
    run = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "1", "--root", root)
    assert run.exit_code == 0
    run_id = next((root / "runs").iterdir()).name
    ok = invoke("evaluate", run_id, "--teacher", f"conv3={rded_style}", "--teacher", f"conv3={rded_style}",
                "--repeats", "1", *FAST, "--root", root)
    assert ok.exit_code == 0, ok.output
    for teacher, message in ((str(rded_style), "does not say its architecture"),
                             (f"conv3={truncated}", "cannot read teacher checkpoint"),
                             (f"conv4={rded_style}", "does not fit conv4")):
        bad = invoke("evaluate", run_id, "--teacher", teacher, "--root", root)
        assert bad.exit_code == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_identical_evaluations_are_reused_not_retrained(model_cache, root):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    args = ["--method", "random", "--dataset", "digits", "--ipc", "1", "--evaluate", "--repeats", "2", *FAST,
            "--root", root]
    first = invoke("run", *args, env=env)
    assert first.exit_code == 0, first.output and "stored earlier" not in first.output
    again = invoke("run", *args, "--repeats", "3", env=env)
    assert again.exit_code == 0, again.output
    assert again.output.count("stored earlier") == 2 and again.output.count("conv3 seed=2:") == 1

    from distillbench.store import Store
    assert len(Store(root).evaluations("digits")) == 3
    forced = invoke("run", *args, "--again", env=env)
    assert forced.exit_code == 0 and "stored earlier" not in forced.output
    other = invoke("run", *args, "--set", "epochs=1", env=env)
    assert other.exit_code == 0 and "stored earlier" not in other.output
    df = Store(root).evaluations("digits")
    assert len(df) == 5 and df["identity"].nunique() == 5


def test_merge_brings_in_another_roots_runs_and_evaluations_once(model_cache, tmp_path):
    """Results made elsewhere (a GPU machine's root) join the local store, set folders included, and count as
    the local evaluations they are: the same run is then reused, not trained again."""
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    there, here = tmp_path / "there", tmp_path / "here"
    args = ["run", "--method", "random", "--dataset", "digits", "--evaluate", "--repeats", "1", *FAST]
    assert invoke(*args, "--ipc", "1", "--root", there, env=env).exit_code == 0
    assert invoke(*args, "--ipc", "2", "--root", here, env=env).exit_code == 0

    merged = invoke("merge", there, "--root", here)
    assert merged.exit_code == 0 and "merged 1 runs and 1 evaluations" in merged.output, merged.output
    shutil.rmtree(there)
    from distillbench.store import Store
    assert sorted(Store(here).evaluations("digits")["ipc"]) == [1, 2]
    again = invoke(*args, "--ipc", "1", "--root", here, env=env)
    assert again.exit_code == 0 and "stored earlier" in again.output and str(here / "runs") in again.output

    shutil.copytree(here, there)
    assert "merged 0 runs and 0 evaluations" in invoke("merge", there, "--root", here).output
    missing = invoke("merge", tmp_path / "nowhere", "--root", here)
    assert missing.exit_code == 2 and "holds no results store" in missing.stderr


def test_five_teacher_protocol_averages_the_seeded_teachers_train_teacher_makes(model_cache, tmp_path, root):
    import json

    from distillbench.store import Store
    cache = tmp_path / "cache"
    shutil.copytree(model_cache / "teachers", cache / "teachers")
    env = {"DISTILLBENCH_CACHE": str(cache)}
    made = invoke("train-teacher", "--dataset", "digits", "--arch", "conv3", "--epochs", "1", "--seeds", "0-1", env=env)
    assert made.exit_code == 0 and "teacher exists" in made.output  # seed 0 is the cached teacher
    seeded = json.loads((cache / "teachers" / "digits-conv3-seed1.json").read_text())
    assert seeded["sha256"] != json.loads((cache / "teachers" / "digits-conv3.json").read_text())["sha256"]
    made = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--root", root, env=env)
    assert made.exit_code == 0
    (run_id,) = Store(root).run_ids()
    missing = invoke("evaluate", run_id, "--protocol", "d3hr-five-teachers", *FAST, "--root", root, env=env)
    assert missing.exit_code == 2 and "no conv3@2 teacher" in missing.stderr and "--seeds 0-2" in missing.stderr
    two = invoke("evaluate", run_id, "--protocol", "d3hr-five-teachers", *FAST, "--set", "teachers=2", "--repeats",
                 "1", "--root", root, env=env)
    assert two.exit_code == 0, two.output
    (record,) = [json.loads(r["record"]) for r in Store(root)._rows("evaluations")]
    assert [t["sha256"] for t in record["teachers"]] == [
        json.loads((cache / "teachers" / name).read_text())["sha256"]
        for name in ("digits-conv3.json", "digits-conv3-seed1.json")]
    other = invoke("train-teacher", "--dataset", "digits", "--arch", "conv4", "--epochs", "1", "--seed", "7",
                   "--force", env=env)  # the session's cache may hold a conv4 teacher of seed 0 already
    assert other.exit_code == 0
    mismatch = invoke("train-teacher", "--dataset", "digits", "--arch", "conv4", "--seeds", "0-1", env=env)
    assert mismatch.exit_code == 2 and "was not trained with seed 0" in mismatch.stderr
    bad = invoke("train-teacher", "--dataset", "digits", "--seeds", "4-x", env=env)
    assert bad.exit_code == 2 and "--seeds 4-x: expected a range A-B" in bad.stderr


def test_augmentation_robustness_pairs_evaluations_with_and_without_augmentation(model_cache, root):
    import math

    from distillbench import ddranking
    from distillbench.labels import labelled
    from distillbench.store import Store
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    bare = ["--set", "mix=none", "--set", "augment=none"]
    for method in (["--method", "random"], ["--method", "sre2l", "--option", "iterations=2"]):
        for extra in ([], bare):
            result = invoke("run", *method, "--dataset", "digits", "--ipc", "2", "--evaluate", *FAST, *extra,
                            "--repeats", "1", "--root", root, env=env)
            assert result.exit_code == 0, result.output
    df = Store(root).evaluations()
    labels = set(labelled(df)["protocol"])
    assert labels == {"rded[epochs=2,eval_after=0.0,eval_every=1]",
                      "rded[augment=none,epochs=2,eval_after=0.0,eval_every=1,mix=none]"}  # never one cell
    (row,) = ddranking.ars_table(df).to_dict("records")
    acc = {(r["method"], r["protocol_overrides"].get("mix") == "none"): r["final_acc"] for _, r in df.iterrows()}
    gain, bare_gain = acc[("sre2l", False)] - acc[("random", False)], acc[("sre2l", True)] - acc[("random", True)]
    beta = 0.5 * gain + 0.5 * bare_gain
    assert row["method"] == "sre2l[iterations=2]" and row["ARS"] == pytest.approx((math.exp(beta) - math.exp(-1)) /
                                                                     (math.e - math.exp(-1)))
    output = invoke("compare", "--root", root, env=env).output
    assert "augmentation robustness" in output and "gain_no_aug" in output
    assert ddranking.ars(0, 0) == pytest.approx((1 - math.exp(-1)) / (math.e - math.exp(-1)))
    assert ddranking.ars(1, 1) == pytest.approx(1) and ddranking.ars(-1, -1) == pytest.approx(0)


def test_augmentation_robustness_keeps_partial_overrides_and_method_variants_apart():
    import pandas as pd

    from distillbench import ddranking

    def rows(method, options, overrides, acc):
        return dict(dataset="d", student="s", ipc=1, protocol="rded", protocol_version=3, method=method,
                    options=options, option_defaults={"k": 1}, models={}, labels="soft",
                    protocol_overrides=overrides, final_acc=acc)
    bare = {"mix": "none", "augment": "none"}
    df = pd.DataFrame([rows("random", {}, {}, 0.5), rows("random", {}, bare, 0.4),
                       rows("m", {"k": 1}, {}, 0.7), rows("m", {"k": 1}, bare, 0.45),
                       rows("m", {"k": 2}, {}, 0.9), rows("m", {"k": 1}, {"augment": "none"}, 0.1)])
    (row,) = ddranking.ars_table(df).to_dict("records")  # m[k=2] has no bare run; augment-only is another key
    assert row["method"] == "m" and row["gain_aug"] == pytest.approx(0.2) and row["gain_no_aug"] == pytest.approx(0.05)
