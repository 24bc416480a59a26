"""torchrun on CPU (2 processes, gloo): evaluation trains each student once, with DDP, and records once.
(That every method's distillation shards to the single-process result is part of test_conformance.)"""
import json
import sqlite3

import pytest

from distillbench.testing import invoke, torchrun


def test_evaluate_under_torchrun_trains_with_ddp_and_records_one_result(model_cache, root):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "5", "--root", root).exit_code == 0
    (run_id,) = [p.name for p in (root / "runs").iterdir()]
    proc = torchrun("evaluate", run_id, "--repeats", "1", "--set", "epochs=3", "--root", root, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("random ipc=5 conv3 seed=0:") == 1  # reported by rank 0 only
    with sqlite3.connect(root / "results.sqlite") as db:
        records = [json.loads(r[0]) for r in db.execute("SELECT record FROM evaluations")]
    (record,) = records
    assert record["distributed"] == {"world_size": 2, "backend": "gloo", "sync_batchnorm": False}
    assert record["final_acc"] > 0.3  # ten classes: chance is 0.1


@pytest.mark.parametrize("device, selected", [("cuda", []), ("cuda:1", [1])])
def test_only_an_indexed_gpu_is_selected(monkeypatch, device, selected):
    """torch.cuda.set_device refuses a plain 'cuda' (it wants an index): that once broke every --device cuda."""
    import torch
    from torch._utils import _get_device_index
    from distillbench.device import resolve_device
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(_get_device_index(d)))
    assert resolve_device(device) == device
    assert chosen == selected


DECODE_LOG = """
import os
if os.environ.get("DISTILLBENCH_TEST_DECODE_LOG"):
    import distillbench.datasets as datasets
    checked = datasets._decodes
    def logged(path):
        with open(os.environ["DISTILLBENCH_TEST_DECODE_LOG"], "a") as log:
            log.write(f"{os.environ.get('RANK')} {path}\\n")
        return checked(path)
    datasets._decodes = logged
"""


def test_the_bad_image_check_decodes_each_file_once_across_ranks(tmp_path):
    from PIL import Image
    for c in range(2):
        (tmp_path / "data" / "train" / f"c{c}").mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (20, 20), (100 * c, 0, 0)).save(tmp_path / "data" / "train" / f"c{c}" / f"{i}.png")
    bad = tmp_path / "data" / "train" / "c1" / "4.png"
    bad.write_bytes(b"not an image")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(DECODE_LOG)
    log = tmp_path / "decoded.log"
    env = {"PYTHONPATH": str(tmp_path / "site"), "DISTILLBENCH_TEST_DECODE_LOG": str(log)}
    proc = torchrun("run", "--method", "random", "--dataset", "imagefolder", "--data-dir", tmp_path / "data",
                    "--ipc", "2", "--skip-bad-images", "--root", tmp_path / "root", env=env)
    assert proc.returncode == 0, proc.stderr
    decoded = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert sorted(path for _, path in decoded) == sorted(str(p) for p in (tmp_path / "data" / "train").rglob("*.png"))
    assert {rank for rank, _ in decoded} == {"0", "1"}
    (out,) = (tmp_path / "root" / "runs").iterdir()
    assert json.loads((out / "manifest.json").read_text())["inputs"]["skipped_files"] == [str(bad)]
