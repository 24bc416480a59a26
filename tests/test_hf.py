"""Hugging Face datasets out and in: `export --format hf` writes a set as a `datasets` dataset; `hf:PATH` reads
one back, byte for byte, to the same evaluation identities; sets made elsewhere evaluate too."""
import json

import datasets
import torch
from PIL import Image

from distillbench.store import Store
from distillbench.testing import finished_sets, invoke

FAST = ["--set", "epochs=2", "--set", "eval_every=1", "--set", "eval_after=0", "--repeats", "2"]


def test_an_exported_set_reimports_byte_for_byte_and_evaluates_to_the_same_records(model_cache, root, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(model_cache)}
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "2", "--evaluate", "--protocol",
                  "stored-labels", *FAST, "--root", root, env=env).exit_code == 0
    (original,) = finished_sets(root)
    out = tmp_path / "hf"
    assert invoke("export", original.name, "--format", "hf", "--out", out, "--root", root).exit_code == 0
    table = datasets.load_from_disk(str(out))
    manifest = json.loads(original.joinpath("manifest.json").read_text())
    assert len(table) == 20 and table.features["label"].names == manifest["class_names"]
    assert json.loads(table.info.description)["distillbench_manifest"]["run_id"] == original.name
    (soft,) = [c for c in table.column_names if c.startswith("soft_labels_")]  # the stored-labels protocol's
    assert torch.tensor(table[soft]).sum(1).allclose(torch.ones(20))

    again = invoke("evaluate", f"hf:{out}", "--protocol", "stored-labels", *FAST, "--root", root, env=env)
    assert again.exit_code == 0 and again.output.count("stored earlier") == 2, again.output
    (imported,) = (root / "imports").iterdir()
    for png in original.glob("*/*.png"):
        assert (imported / png.relative_to(original)).read_bytes() == png.read_bytes()
    assert len(Store(root).evaluations()) == 2
    refused = invoke("export", original.name, "--out", out, "--root", root)
    assert refused.exit_code == 2 and "is not empty" in refused.stderr
    one_split = invoke("train-teacher", "--dataset", f"hf:{out}", "--epochs", "1", env=env)
    assert one_split.exit_code == 2 and "holds one split" in one_split.stderr  # never tested on its training set


def test_a_set_made_elsewhere_evaluates_under_the_dataset_named(model_cache, root, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    images = [Image.fromarray((torch.rand(32, 32, 3) * 255).to(torch.uint8).numpy()) for _ in range(20)]
    names = [str(c) for c in range(10)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    theirs = datasets.Dataset.from_dict({"image": images, "label": [c % 10 for c in range(20)]}, features=features)
    theirs.save_to_disk(str(tmp_path / "theirs"))
    unnamed = invoke("evaluate", f"hf:{tmp_path / 'theirs'}", "--root", root, env=env)
    assert unnamed.exit_code == 2 and "--dataset" in unnamed.stderr
    result = invoke("evaluate", f"hf:{tmp_path / 'theirs'}", "--dataset", "digits", *FAST, "--root", root, env=env)
    assert result.exit_code == 0, result.output
    assert set(Store(root).evaluations()["method"]) == {f"hf:{tmp_path / 'theirs'}"}
    missing = invoke("evaluate", "hf:nobody/no-such-set", "--dataset", "digits", "--root", root, env=env)
    assert missing.exit_code == 2 and "no Hub dataset 'nobody/no-such-set' in the Hugging Face cache" in missing.stderr


def test_a_hugging_face_dataset_is_a_dataset_to_train_and_distil_from(tmp_path, root):
    from distillbench.plugins import registry
    env = {"DISTILLBENCH_CACHE": str(tmp_path / "cache")}
    generator = torch.Generator().manual_seed(0)

    def split(n):  # class c: bright in channel c % 3, so that a teacher can learn it
        labels = [k % 3 for k in range(n)]
        pixels = [(torch.rand(40, 48, 3, generator=generator) * 60).to(torch.uint8) for _ in labels]
        for image, label in zip(pixels, labels):
            image[..., label] += 150
        return {"img": [Image.fromarray(p.numpy()) for p in pixels], "fine": labels}
    features = datasets.Features({"img": datasets.Image(), "fine": datasets.ClassLabel(names=["r", "g", "b"])})
    datasets.DatasetDict({name: datasets.Dataset.from_dict(split(n), features=features)
                          for name, n in (("train", 60), ("validation", 30))}).save_to_disk(str(tmp_path / "set"))
    name = f"hf:{tmp_path / 'set'}?image=img&label=fine&size=16&test=validation"
    spec = registry("dataset").get(name)
    assert (spec.num_classes, spec.image_size) == (3, 16) and spec.mean[0] > 0.3
    train = spec.load("train")
    assert train.load([0, 1]).shape == (2, 3, 16, 16) and train.class_names == ["r", "g", "b"]
    teacher = invoke("train-teacher", "--dataset", name, "--arch", "conv3", "--epochs", "3", env=env)
    assert teacher.exit_code == 0 and "test accuracy" in teacher.output, teacher.output
    result = invoke("run", "--method", "herding", "--dataset", name, "--ipc", "2", "--root", root, env=env)
    assert result.exit_code == 0, result.output
    (made,) = finished_sets(root)
    assert made.name.startswith("hf_") and json.loads((made / "manifest.json").read_text())["dataset"] == name
    wrong = invoke("run", "--method", "random", "--dataset", f"hf:{tmp_path / 'set'}?image=pic", "--ipc", "1",
                   "--root", root, env=env)
    assert wrong.exit_code == 2 and "no column 'pic'" in wrong.stderr
