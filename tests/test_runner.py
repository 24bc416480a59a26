"""The per-unit runner: output layout, manifest, determinism, atomic finish and resume."""
import json
import re

import pytest
import torch
from torchvision.datasets import ImageFolder

from distillbench.testing import invoke, png_bytes_of
from distillbench import atomic
from distillbench.builtin.random_method import RandomSubset
from distillbench.distilled import MANIFEST, DistilledSet
from distillbench.grid import grid_labels, tile_grid, write_grid
from distillbench.errors import ContractError
from distillbench.method import RunContext, Unit
from distillbench.runner import run_units
from distillbench.plugins import registry


def context(tmp_path, ipc=3, seed=0):
    spec = registry("dataset").get("digits")
    return RunContext(spec=spec, train=spec.load("train"), ipc=ipc, seed=seed, device="cpu", scratch=tmp_path / "s",
                      shared=tmp_path / "shared")


def test_cli_run_writes_imagefolder_manifest_and_grid(root):
    result = invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "3", "--root", root)
    assert result.exit_code == 0, result.output
    (run_dir,) = (root / "runs").iterdir()
    assert f"distilled set: {run_dir}" in result.output
    assert (run_dir / "grid.png").stat().st_size > 0
    folder = ImageFolder(str(run_dir))
    assert len(folder) == 30 and folder.class_to_idx["003_3"] == 3
    assert [label for _, label in folder.samples] == [c for c in range(10) for _ in range(3)]
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert manifest["method"] == "random" and manifest["ipc"] == 3 and manifest["seed"] == 0
    assert manifest["inputs"]["train_fingerprint"].startswith("sha256:")
    assert set(manifest["versions"]) >= {"python", "torch", "distillbench"}
    assert len(manifest["timings"]["unit_seconds"]) == 10
    assert manifest["images_checksum"] == DistilledSet.open(run_dir).checksum()
    show = invoke("show", run_dir.name, "--grid", root / "g.png", "--root", root)
    assert show.exit_code == 0 and (root / "g.png").is_file()


def test_the_grid_names_each_row_and_the_set_in_a_title(tmp_path):
    import numpy as np
    from PIL import Image
    distilled = run_units(RandomSubset(), context(tmp_path), tmp_path / "out",
                          {"method": "random", "dataset": "digits", "ipc": 3, "seed": 0})
    title, names = grid_labels(distilled.manifest)
    assert title == "random · digits · IPC 3 · seed 0" and names == [str(c) for c in range(10)]
    grid = np.asarray(Image.open(write_grid(distilled, tmp_path / "grid.png")).convert("L"))
    tiles = tile_grid(distilled.load()[0][:3], 3)  # one row of tiles, enlarged 2x (32 px images)
    band, margin = grid.shape[0] - 10 * (tiles.shape[1] - 2) * 2 - 4, grid.shape[1] - tiles.shape[2] * 2
    assert band > 0 and margin > 0
    assert (grid[:band] < 128).any()  # the title
    rows = np.split(grid[band + 4:, :margin], 10)
    assert all((row < 128).any() for row in rows)  # each row's name, left of its tiles


def test_random_images_are_real_training_images_of_their_class(tmp_path):
    ctx = context(tmp_path)
    distilled = run_units(RandomSubset(), ctx, tmp_path / "out", {})
    images, labels = distilled.load()
    for image, label in zip(images, labels):
        pool = ctx.train.load(ctx.train.indices_of(int(label)))
        assert (pool == image).flatten(1).all(1).any()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = run_units(RandomSubset(), context(tmp_path, seed=1), tmp_path / "a", {})
    b = run_units(RandomSubset(), context(tmp_path, seed=1), tmp_path / "b", {})
    c = run_units(RandomSubset(), context(tmp_path, seed=2), tmp_path / "c", {})
    assert png_bytes_of(a.path) == png_bytes_of(b.path)
    assert png_bytes_of(a.path) != png_bytes_of(c.path)


class Crashes(RandomSubset):
    """Dies in the middle of the run, after some units finished."""

    calls = 0

    def distill_unit(self, unit, ctx):
        type(self).calls += 1
        if unit.id == "class-00004":
            raise KeyboardInterrupt
        return super().distill_unit(unit, ctx)


class Counts(RandomSubset):
    calls = 0

    def distill_unit(self, unit, ctx):
        type(self).calls += 1
        return super().distill_unit(unit, ctx)


def test_interrupted_run_is_not_complete_and_resumes_to_same_result(tmp_path):
    reference = run_units(RandomSubset(), context(tmp_path), tmp_path / "ref", {})
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_units(Crashes(), context(tmp_path), out, {})
    assert not out.exists()
    with pytest.raises(Exception, match="not a finished distilled set"):
        DistilledSet.open(out.with_name("out.partial"))
    resumed = run_units(Counts(), context(tmp_path), out, {})
    assert Counts.calls == 6  # units 0-3 were kept from the interrupted run
    assert png_bytes_of(resumed.path) == png_bytes_of(reference.path)
    assert not out.with_name("out.partial").exists()


class KeepsNotes(RandomSubset):
    """Leaves a note per unit in the run's scratch, as D3HR does with its selections."""

    def distill_unit(self, unit, ctx):
        atomic.write_json(ctx.scratch / "notes" / f"{unit.id}.json", {})
        return super().distill_unit(unit, ctx)


class CrashesAfterNotes(KeepsNotes, Crashes):
    """Writes its note, then dies where :class:`Crashes` does."""


def test_scratch_is_kept_while_the_run_is_unfinished_and_deleted_once_it_is(tmp_path):
    scratch, out = tmp_path / "s", tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_units(CrashesAfterNotes(), context(tmp_path), out, {})
    assert len(list((scratch / "notes").glob("*.json"))) == 5
    run_units(KeepsNotes(), context(tmp_path), out, {})
    assert (out / MANIFEST).is_file() and not scratch.exists()


def test_wrong_image_shape_from_a_method_is_an_error(tmp_path):
    class Wrong(RandomSubset):
        def distill_unit(self, unit, ctx):
            return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    with pytest.raises(ContractError, match=r"method 'random' returned torch.uint8 images of shape \(1, 3, 8, 8\) "
                                            r"for unit class-00000; expected uint8 \(3, 3, 32, 32\)"):
        run_units(Wrong(), context(tmp_path), tmp_path / "out", {})


@pytest.mark.parametrize("units, rule", [
    (lambda n, ipc: [Unit("all", tuple(range(1, n + 1)) * ipc, tuple(s for s in range(ipc) for _ in range(n)))],
     "gave unit all label 10, out of range for 10 classes (0..9)"),
    (lambda n, ipc: [Unit(f"class-{c}", (c,) * ipc, (0,) * ipc) for c in range(n)],
     "gave units whose (label, slot) pairs are not each class's slots 0..2 exactly once"),
    (lambda n, ipc: [Unit("short", (0, 1), (0,))], "gave unit short 2 labels but 1 slots"),
])
def test_units_that_do_not_cover_the_set_once_break_the_contract(tmp_path, units, rule):
    class BadUnits(RandomSubset):
        def units(self, num_classes, ipc):
            return units(num_classes, ipc)

    with pytest.raises(ContractError, match=re.escape(rule)):
        run_units(BadUnits(), context(tmp_path), tmp_path / "out", {})
    assert not (tmp_path / "out.partial").exists()
