"""The conformance suites a method or an evaluator must pass, built-in or third-party (diffusers' tester
mixins are the model).  Subclass one in your own test suite and name what you registered::

    from distillbench.testing import MethodContract

    class TestMyMethod(MethodContract):
        method = "my-method"

Runs are small (``digits``, IPC 2, the method's ``smoke_options``) and use a model cache shared by the
test session, which the class's ``prepare`` commands fill (each skips what the cache already holds).
"""
import dataclasses
import json
import shutil

import pytest

from distillbench.testing.helpers import finished_sets, invoke, killed_at_call, png_bytes_of, torchrun


class _Contract:
    dataset = "digits"
    prepare: tuple = ()  # CLI commands that put the models it needs into the cache, e.g. ("train-teacher", ...)

    @pytest.fixture
    def cache(self, distillbench_cache):
        for command in self.prepare:
            result = invoke(*command, env={"DISTILLBENCH_CACHE": str(distillbench_cache)})
            assert result.exit_code == 0, result.output
        return distillbench_cache

    def invoke(self, cache, *args):
        return invoke(*args, env={"DISTILLBENCH_CACHE": str(cache)})


class MethodContract(_Contract):
    """A registered method writes a complete, deterministic, resumable set and refuses bad options."""

    method: str = ""
    ipc = 2
    options: dict = None  # default: the method's smoke_options
    draws = True  # False for a method without randomness (herding): then every seed gives the same set

    def method_class(self):
        from distillbench.plugins import registry
        return registry("method").get(self.method)

    def method_options(self) -> dict:
        return self.method_class().smoke_options if self.options is None else self.options

    def run_args(self, root, *extra, seed=0):
        options = self.method_options()
        pairs = [a for key, value in options.items() for a in ("--option", f"{key}={value}")]
        return ["run", "--method", self.method, "--dataset", self.dataset, "--ipc", self.ipc, "--seed", seed,
                *pairs, *extra, "--root", root]

    def run(self, cache, root, *extra, seed=0):
        return self.invoke(cache, *self.run_args(root, *extra, seed=seed))

    def test_layout_ipc_and_manifest(self, cache, tmp_path):
        from distillbench.datasets import DataSource
        from distillbench.distilled import class_folder
        from distillbench.plugins import registry
        result = self.run(cache, tmp_path)
        assert result.exit_code == 0, result.output
        (out,) = finished_sets(tmp_path)
        names = DataSource().load(registry("dataset").get(self.dataset), "train").class_names
        folders = sorted(p.name for p in out.iterdir() if p.is_dir())
        assert folders == sorted(class_folder(c, name, len(names)) for c, name in enumerate(names))
        assert all(len(list((out / f).glob("*.png"))) == self.ipc for f in folders)
        manifest = json.loads((out / "manifest.json").read_text())
        assert (manifest["method"], manifest["ipc"], manifest["dataset"]) == (self.method, self.ipc, self.dataset)
        assert manifest["plugin"]["version"] and manifest["versions"]["torch"]
        assert manifest["inputs"]["train_fingerprint"] and manifest["images_checksum"].startswith("sha256:")
        fields = {f.name for f in dataclasses.fields(self.method_class().Options)}
        assert set(manifest["options"]) == fields  # the fully resolved options, defaults included

    def test_retrained_models_mean_a_new_run(self, cache, tmp_path):
        assert self.run(cache, tmp_path).exit_code == 0
        (before,) = finished_sets(tmp_path)
        retrained = tmp_path / "cache"
        shutil.copytree(cache, retrained)
        for weights in [*retrained.rglob("*.pt"), *retrained.rglob("*.safetensors")]:
            if "datasets" not in weights.relative_to(retrained).parts:  # the parsed embedded datasets are no model
                _nudge_weights(weights)
        assert self.run(retrained, tmp_path).exit_code == 0
        runs = finished_sets(tmp_path)
        models = json.loads((before / "manifest.json").read_text())["inputs"]["models"]
        assert len(runs) == (2 if models else 1)
        if models:
            (after,) = set(runs) - {before}
            assert json.loads((after / "manifest.json").read_text())["inputs"]["models"].keys() == models.keys()

    def test_deterministic_on_cpu(self, cache, tmp_path):
        for name in ("a", "b"):
            assert self.run(cache, tmp_path / name, "--device", "cpu").exit_code == 0
        assert png_bytes_of(finished_sets(tmp_path / "a")[0]) == png_bytes_of(finished_sets(tmp_path / "b")[0])

    def test_the_seed_matters_when_the_method_draws(self, cache, tmp_path):
        for seed in (0, 1):
            assert self.run(cache, tmp_path / str(seed), seed=seed).exit_code == 0
        same = png_bytes_of(finished_sets(tmp_path / "0")[0]) == png_bytes_of(finished_sets(tmp_path / "1")[0])
        assert same != self.draws, "the seed must change the set exactly when the method draws random numbers"

    def test_unknown_option_is_rejected(self, cache, tmp_path):
        result = self.run(cache, tmp_path, "--option", "no_such_option=1")
        assert result.exit_code == 2
        assert f"unknown option 'no_such_option' for method '{self.method}'" in result.stderr
        assert not finished_sets(tmp_path)

    def test_killed_mid_run_resumes_to_the_same_set(self, cache, tmp_path):
        from distillbench.datasets import DataSource
        from distillbench.plugins import registry
        assert self.run(cache, tmp_path / "whole").exit_code == 0
        (reference,) = finished_sets(tmp_path / "whole")
        spec = registry("dataset").get(self.dataset)
        train = DataSource().load(spec, "train")
        method = self.method_class().from_overrides(self.method_options()).for_dataset(spec)
        units = method.units(train.num_classes, self.ipc)
        done = max(1, len(units) // 2)
        killed = killed_at_call("method", self.method, "distill_unit", done, *self.run_args(tmp_path / "killed"),
                                env={"DISTILLBENCH_CACHE": str(cache)})
        assert killed.returncode == -9, killed.stderr
        partial = tmp_path / "killed" / "runs" / f"{reference.name}.partial"
        assert len(list((partial / ".units").glob("*.json"))) == done and not finished_sets(tmp_path / "killed")
        assert self.run(cache, tmp_path / "killed").exit_code == 0
        (resumed,) = finished_sets(tmp_path / "killed")
        assert png_bytes_of(resumed) == png_bytes_of(reference) and not partial.exists()

    def test_torchrun_shards_to_the_same_result(self, cache, tmp_path):
        import torch

        from distillbench.store import Store
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # torchrun's threads per rank (OMP_NUM_THREADS=1): CPU sums depend on them
        try:
            assert self.run(cache, tmp_path / "one").exit_code == 0
        finally:
            torch.set_num_threads(threads)
        two = torchrun(*self.run_args(tmp_path / "two"), env={"DISTILLBENCH_CACHE": str(cache)})
        assert two.returncode == 0, two.stderr
        (single,), (sharded,) = finished_sets(tmp_path / "one"), finished_sets(tmp_path / "two")
        assert png_bytes_of(sharded) == png_bytes_of(single)
        assert sorted(p.name for p in sharded.iterdir()) == sorted(p.name for p in single.iterdir())
        manifest = json.loads((sharded / "manifest.json").read_text())
        assert manifest["world_size"] == 2 and len(manifest["timings"]["unit_seconds"]) == len(
            json.loads((single / "manifest.json").read_text())["timings"]["unit_seconds"])
        assert Store(tmp_path / "two").run_ids() == [sharded.name]  # recorded once, by rank 0
        assert two.stdout.count("distilled set:") == 1


class EvaluatorContract(_Contract):
    """A registered evaluator's records land in the store, are reused by identity, and an evaluation killed
    between trials resumes to the records of an uninterrupted one."""

    evaluator: str = ""
    args: tuple = ()  # CLI arguments of a small evaluation (protocol, --set ...)
    bad_args: tuple = ("--set", "no_such_setting=1")  # arguments the evaluator must refuse (exit code 2)
    repeats = 2

    @pytest.fixture
    def distilled(self, cache, tmp_path):
        """A root holding one small random set: (root, run id)."""
        root = tmp_path / "root"
        result = self.invoke(cache, "run", "--method", "random", "--dataset", self.dataset, "--ipc", 2, "--root", root)
        assert result.exit_code == 0, result.output
        return root, finished_sets(root)[0].name

    def evaluate_args(self, root, run_id, *extra):
        return ["evaluate", run_id, "--evaluator", self.evaluator, "--repeats", self.repeats, *self.args, *extra,
                "--root", root]

    def records(self, root):
        from distillbench.store import Store
        return Store(root).evaluations(self.dataset).sort_values(["student", "seed"]).to_dict("records")

    def test_records_hold_the_store_columns(self, cache, distilled):
        root, run_id = distilled
        result = self.invoke(cache, *self.evaluate_args(root, run_id))
        assert result.exit_code == 0, result.output
        records = self.records(root)
        assert len(records) == self.repeats and {r["seed"] for r in records} == set(range(self.repeats))
        for record in records:
            assert record["run_id"] == run_id and 0 <= record["final_acc"] <= 1
            assert record["identity"].startswith("sha256:") and record["student"] and record["protocol"]

    def test_stored_records_are_reused_unless_again(self, cache, distilled):
        root, run_id = distilled
        assert self.invoke(cache, *self.evaluate_args(root, run_id)).exit_code == 0
        again = self.invoke(cache, *self.evaluate_args(root, run_id))
        assert again.exit_code == 0 and again.output.count("stored earlier") == self.repeats
        assert len(self.records(root)) == self.repeats
        forced = self.invoke(cache, *self.evaluate_args(root, run_id, "--again"))
        assert forced.exit_code == 0 and "stored earlier" not in forced.output

    def test_bad_settings_are_refused_before_any_work(self, cache, distilled):
        root, run_id = distilled
        result = self.invoke(cache, *self.evaluate_args(root, run_id, *self.bad_args))
        assert result.exit_code == 2 and result.stderr.startswith("Error: ")
        assert not self.records(root)

    def test_killed_between_trials_resumes_to_the_same_records(self, cache, distilled, tmp_path):
        root, run_id = distilled
        whole = tmp_path / "whole"
        shutil.copytree(root, whole)
        assert self.invoke(cache, *self.evaluate_args(whole, run_id)).exit_code == 0
        killed = killed_at_call("evaluator", self.evaluator, "run_trial", 1, *self.evaluate_args(root, run_id),
                                env={"DISTILLBENCH_CACHE": str(cache)})
        assert killed.returncode == -9, killed.stderr
        assert len(self.records(root)) == 1
        resumed = self.invoke(cache, *self.evaluate_args(root, run_id))
        assert resumed.exit_code == 0 and resumed.output.count("stored earlier") == 1
        keys = ("identity", "seed", "final_acc", "best_acc")
        assert [{k: r[k] for k in keys} for r in self.records(root)] == [
            {k: r[k] for k in keys} for r in self.records(whole)]


def _nudge_weights(path):
    """Change one tensor of a checkpoint, as retraining would, keeping the file loadable."""
    import torch
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file, save_file
        tensors = load_file(path)
        name = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[name] += 1e-3
        save_file(tensors, path, metadata={"format": "pt"})
        return
    checkpoint = torch.load(path, weights_only=True)
    name = next(k for k, v in checkpoint["model"].items() if v.is_floating_point())
    checkpoint["model"][name] += 1e-3
    torch.save(checkpoint, path)
