"""Bad data and bad input: a clear one-line error (or, asked for, a counted skip), never a traceback,
never a silently black image, and never a changed results store."""
import dataclasses
import json
import random
import sqlite3
import typing

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from distillbench.testing import invoke
from distillbench.cli import main
from distillbench.plugins import registry
from distillbench_eval.protocols import Settings


# -- corrupt images in an ImageFolder ---------------------------------------------------------------------

@pytest.fixture
def folder_with_a_corrupt_image(tmp_path):
    for split in ("train", "val"):
        for c, color in enumerate(("red", "blue")):
            for i in range(3):
                Image.new("RGB", (64, 64), color).save(tmp_path / _mkdir(tmp_path / split / f"c{c}") / f"{i}.png")
    bad = tmp_path / "train" / "c1" / "1.png"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated PNG: the header survives, the pixels do not
    return tmp_path, bad


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def imagefolder_run(data, root, *extra, ipc=3):
    return invoke("run", "--method", "random", "--dataset", "imagefolder", "--data-dir", data, "--ipc", ipc,
                  *extra, "--root", root)


def test_corrupt_image_is_an_error_naming_the_file(folder_with_a_corrupt_image, root):
    data, bad = folder_with_a_corrupt_image
    result = imagefolder_run(data, root)  # IPC 3 of 3: every image is read
    assert result.exit_code == 2
    assert f"cannot read image {bad}" in result.stderr and "--skip-bad-images" in result.stderr
    assert not list((root / "runs").glob("*/manifest.json"))


def test_skip_bad_images_leaves_it_out_and_counts_it(folder_with_a_corrupt_image, root):
    data, bad = folder_with_a_corrupt_image
    result = imagefolder_run(data, root, "--skip-bad-images", ipc=2)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image(s)" in result.stderr
    (out,) = (root / "runs").iterdir()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["skipped_images"] == 1 and manifest["inputs"]["skipped_files"] == [str(bad)]
    blue = [Image.open(p).convert("RGB").getpixel((0, 0)) for p in (out / "001_c1").glob("*.png")]
    assert blue == [(0, 0, 255)] * 2  # real images only: nothing black stands in for the bad file
    Image.new("RGB", (64, 64), "blue").save(bad)  # repaired: other training data, so another run
    assert imagefolder_run(data, root, "--skip-bad-images", ipc=2).exit_code == 0
    assert len(list((root / "runs").iterdir())) == 2


def test_a_class_left_empty_by_skipping_is_named(folder_with_a_corrupt_image, root):
    data, bad = folder_with_a_corrupt_image
    for other in bad.parent.glob("*.png"):
        other.write_bytes(b"not an image")
    result = imagefolder_run(data, root, "--skip-bad-images", ipc=1)
    assert result.exit_code == 2 and "class 'c1' has no readable images" in result.stderr


# -- NaN and Inf ------------------------------------------------------------------------------------------

def test_diverging_student_stops_with_student_seed_and_epoch(model_cache, root):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--root", root).exit_code == 0
    (run_id,) = [p.name for p in (root / "runs").iterdir()]
    result = invoke("evaluate", run_id, "--repeats", "1", "--set", "epochs=2", "--set", "lr=1e30", "--root", root,
                    env=env)
    assert result.exit_code == 1
    assert "training loss of conv3 seed 0 became nan in epoch 1" in result.stderr
    with sqlite3.connect(root / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone() == (0,)


@pytest.mark.skipif("d3hr" not in registry("method").names(), reason="the d3hr plugin is not installed")
def test_nan_in_the_backbone_is_caught_at_the_class_and_step(model_cache, tmp_path, root):
    import shutil
    backbone = shutil.copytree(model_cache / "d3hr" / "backbones" / "digits", tmp_path / "broken")
    weights = next((backbone / "transformer").glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(k for k in tensors if k.endswith("proj_out_2.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, weights)
    result = invoke("run", "--method", "d3hr", "--dataset", "digits", "--ipc", "2", "--option", f"backbone={backbone}",
                    "--option", "num_inference_steps=10", "--option", "inversion_steps=6", "--root", root)
    assert result.exit_code == 1
    assert "NaN or Inf in the mapped latents of class 0" in result.stderr
    assert not list((root / "runs").glob("*/manifest.json"))


# -- fuzz: malformed options, option files and checkpoints leave the store as it was -------------------------

JUNK = ["", "=", "a=b=c", "x" * 300, "ü∂", "../../no/such/thing", "1e999", "nan", "-inf", "0x10", "1,2", "[1]",
        "{}", " 1 2", "None?"]


def _typed_fields(options_cls):
    """Fields that take numbers, booleans or choices (free-text ones, like paths, take any junk as a name)."""
    hints = typing.get_type_hints(options_cls)
    free_text = [name for name, hint in hints.items() if str in (hint, *typing.get_args(hint))]
    return [f.name for f in dataclasses.fields(options_cls) if f.name not in free_text]


def fuzz_cases(seed=0, per_field=2):
    """Malformed command lines: junk in every flag and in every typed method option and protocol setting,
    plus numbers out of range; none of them is valid, so each must fail cleanly."""
    rng = random.Random(seed)
    base = ["run", "--method", "random", "--dataset", "digits", "--ipc", "2"]
    cases = []
    for flag in ("--method", "--dataset", "--ipc", "--seed", "--device", "--option", "--repeats", "--student",
                 "--protocol", "--teacher", "--set"):
        cases += [base + ["--evaluate", flag, junk] for junk in rng.sample(JUNK, per_field)]
    for method in registry("method").names():
        method_base = ["run", "--method", method, "--dataset", "digits", "--ipc", "2"]
        for key in _typed_fields(registry("method").get(method).Options):
            cases += [method_base + ["--option", f"{key}={junk}"] for junk in rng.sample(JUNK, per_field)]
    for key in _typed_fields(Settings):
        cases += [base + ["--evaluate", "--set", f"{key}={junk}"] for junk in rng.sample(JUNK, per_field)]
    out_of_range = [["--ipc", "0"], ["--ipc", "-3"], ["--ipc", "100000"], ["--evaluate", "--repeats", "0"],
                    ["--evaluate", "--set", "epochs=0"], ["--evaluate", "--set", "lr=-1"],
                    ["--evaluate", "--set", "eval_after=2"], ["--evaluate", "--set", "batch_size=0"]]
    cases += [base + extra for extra in out_of_range]
    return cases


def store_snapshot(root):
    with sqlite3.connect(root / "results.sqlite") as db:
        rows = list(db.iterdump())
    return rows, sorted(str(p.relative_to(root)) for p in (root / "runs").rglob("*"))


@pytest.fixture(scope="module")
def populated_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("populated")
    result = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--evaluate", "--protocol",
                    "hard-label", "--set", "epochs=1", "--repeats", "1", "--root", root)
    assert result.exit_code == 0, result.output
    return root


def run_main(args, capsys):
    """The real entry point, as a user's shell calls it: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_clean_failure(args, populated_root, capsys):
    before = store_snapshot(populated_root)
    code, out, err = run_main([*args, "--root", populated_root], capsys)
    assert code in (1, 2), f"{args} exited {code}: {out} {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"{args}: {err}"
    assert store_snapshot(populated_root) == before, f"{args} changed the store"


def test_fuzzed_command_lines_fail_cleanly(model_cache, populated_root, capsys, monkeypatch):
    monkeypatch.setenv("DISTILLBENCH_CACHE", str(model_cache))  # teachers and backbone exist: only the junk is wrong
    cases = fuzz_cases()
    assert len(cases) > 100
    for args in cases:
        assert_clean_failure(args, populated_root, capsys)


MALFORMED_JSON = ['{"name": "p", "version": 1, "settings": {"epochs": "many"}}', '{"name": "p"',
                  '[1, 2]', '', '\x00\x01binary', '{"name": "p", "version": "one", "settings": {}}',
                  '{"name": "p", "version": 1, "settings": {"no_such_setting": 1}}',
                  '{"name": "p", "version": 1, "settings": []}']


def recorded_run_id(root):
    with sqlite3.connect(root / "results.sqlite") as db:
        return db.execute("SELECT run_id FROM runs").fetchone()[0]


@pytest.mark.parametrize("text", MALFORMED_JSON)
def test_malformed_protocol_files_fail_cleanly(text, populated_root, capsys, tmp_path):
    protocol = tmp_path / "protocol.json"
    protocol.write_text(text)
    assert_clean_failure(["evaluate", recorded_run_id(populated_root), "--protocol", protocol], populated_root, capsys)


def truncated_copy(source, cut: int, target):
    """``source``'s bytes cut at one of four places: empty, inside the header, half way, one byte short."""
    data = source.read_bytes()
    target.write_bytes(data[: [0, 7, len(data) // 2, len(data) - 1][cut]])
    return target


@pytest.mark.parametrize("cut", range(4))
def test_truncated_teacher_checkpoint_fails_cleanly(cut, model_cache, populated_root, capsys, tmp_path):
    teacher = truncated_copy(model_cache / "teachers" / "digits-conv3.pt", cut, tmp_path / "teacher.pt")
    assert_clean_failure(["evaluate", recorded_run_id(populated_root), "--teacher", f"conv3={teacher}"],
                         populated_root, capsys)


@pytest.mark.parametrize("cut", [1, 2])  # SQLite itself opens the other two cuts: empty, one byte short
def test_a_damaged_results_store_is_named_with_the_fix(cut, populated_root, capsys, tmp_path):
    store = truncated_copy(populated_root / "results.sqlite", cut, tmp_path / "results.sqlite")
    for args in (["compare"], ["show"], ["run", "--method", "random", "--dataset", "digits", "--ipc", "1"]):
        code, _, err = run_main([*args, "--root", tmp_path], capsys)
        assert code == 1 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith(f"Error: the results store {store} cannot be opened"), err
        assert "move it aside" in err


@pytest.fixture(scope="module")
def stats_file(model_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("d3hr")
    result = invoke("run", "--method", "d3hr", "--dataset", "digits", "--ipc", "1", "--option", "m=16",
                    "--option", "num_inference_steps=10", "--option", "inversion_steps=6", "--root", root,
                    env={"DISTILLBENCH_CACHE": str(model_cache)})
    assert result.exit_code == 0, result.output
    (out,) = (root / "runs").iterdir()
    return out / "stats.safetensors"


@pytest.mark.skipif("d3hr" not in registry("method").names(), reason="the d3hr plugin is not installed")
@pytest.mark.parametrize("cut", range(4))
def test_truncated_backbone_and_stats_files_fail_cleanly(cut, model_cache, stats_file, populated_root, capsys,
                                                         tmp_path):
    import shutil
    backbone = shutil.copytree(model_cache / "d3hr" / "backbones" / "digits", tmp_path / "backbone")
    weights = next((backbone / "transformer").glob("*.safetensors"))
    truncated_copy(weights, cut, weights)
    assert_clean_failure(["run", "--method", "d3hr", "--dataset", "digits", "--ipc", "2",
                          "--option", f"backbone={backbone}"], populated_root, capsys)
    stats = truncated_copy(stats_file, cut, tmp_path / "stats.safetensors")
    assert_clean_failure(["d3hr", "generate", "--stats", stats, "--ipc", "2"], populated_root, capsys)
