"""Per-dataset recipes: options left unset take the values of the method's official script for the dataset,
and the manifest says which ones did."""
import json

import torch

from distillbench.plugins import registry
from distillbench.testing import TINY_TEACHER, finished_sets, invoke
from distillbench_baselines.rded import RDED
from distillbench_baselines.sre2l import SRe2L

SCRIPTS = {  # dataset -> (SRe2L's recover script values, RDED's script values)
    "cifar10": ({"iterations": 1000, "lr": 0.25, "r_bn": 0.01, "jitter": 4, "roll": "positive",
                 "teacher_arch": "conv3"}, {"factor": 1, "teacher_arch": "conv3"}),
    "tinyimagenet": ({"iterations": 4000, "lr": 0.1, "r_bn": 1.0, "jitter": 4, "roll": "symmetric",
                      "teacher_arch": "resnet18_modified"}, {"factor": 1, "teacher_arch": "conv4"}),
    "imagenet": ({"iterations": 4000, "lr": 0.25, "r_bn": 0.01, "jitter": 32, "roll": "positive",
                  "teacher_arch": "resnet18"}, {"factor": 2, "teacher_arch": "resnet18"}),
}


def test_recipes_are_the_official_scripts_values():
    for dataset, (sre2l, rded) in SCRIPTS.items():
        spec = registry("dataset").get(dataset)
        assert SRe2L().recipe(spec) == sre2l and RDED().recipe(spec) == rded, dataset


def test_an_option_given_by_hand_wins_over_the_recipe():
    spec = registry("dataset").get("tinyimagenet")
    method = SRe2L.from_overrides({"lr": "0.5"}).for_dataset(spec)
    assert method.options.lr == 0.5 and method.options.r_bn == 1.0


def test_the_manifest_records_the_resolved_options_and_which_came_from_the_recipe(distillbench_cache, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(distillbench_cache)}
    assert invoke(*TINY_TEACHER, env=env).exit_code == 0
    result = invoke("run", "--method", "sre2l", "--dataset", "digits", "--ipc", "1", "--option", "iterations=2",
                    "--root", tmp_path, env=env)
    assert result.exit_code == 0, result.output
    manifest = json.loads((finished_sets(tmp_path)[0] / "manifest.json").read_text())
    assert manifest["options"]["lr"] == 0.25 and manifest["options"]["iterations"] == 2
    assert manifest["options_from_recipe"] == ["jitter", "lr", "r_bn", "roll", "teacher_arch"]
    assert manifest["option_defaults"]["lr"] == 0.25  # so that `compare` keeps the plain column name


def test_tinys_roll_goes_both_ways():
    from distillbench_baselines.recovery import roll
    x = torch.zeros(1, 3, 8, 8)
    x[..., 0, 0] = 1
    shifts = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        rolled = roll(x, 4, True, generator)
        shifts.add(tuple(int(i) for i in torch.nonzero(rolled[0, 0])[0]))
    assert {0, 4, 5, 7}.issubset({row for row, _ in shifts})  # rows 5..7 are rolls of -3..-1


def test_sre2l_matches_batchnorm2d_statistics_only_as_the_official_hooks_do():
    import torch
    from distillbench_baselines.recovery import BNStatistics
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5), torch.nn.BatchNorm1d(5)).eval()
    hooks = BNStatistics(model)
    x = torch.randn(3, 3, 8, 8)
    model(x)
    features = model[0](x)
    expected = (features.mean((0, 2, 3)) - 0).norm() + (features.var((0, 2, 3), unbiased=False) - 1).norm()
    assert hooks.layers == [model[1]] and torch.allclose(hooks.loss(10.0), 10 * expected)


def test_rded_crops_the_originals_as_random_resized_crop_with_ratio_one(monkeypatch):
    import torch
    from torchvision.transforms import RandomResizedCrop

    from distillbench_baselines.rded import random_square_crops
    image = torch.arange(3 * 30 * 50, dtype=torch.float32).view(3, 30, 50).to(torch.uint8)
    crops = random_square_crops([image, image[:, :, :30]], 4, 8, torch.Generator().manual_seed(0))
    assert crops.shape == (8, 3, 8, 8)
    torch.manual_seed(0)
    theirs = torch.tensor([RandomResizedCrop.get_params(image, [0.08, 1.0], [1.0, 1.0])[2] for _ in range(4000)])
    sides, resize = [], torch.nn.functional.interpolate
    monkeypatch.setattr(torch.nn.functional, "interpolate", lambda crop, **kw: sides.append(crop.shape[-1]) or
                        resize(crop, **kw))
    random_square_crops([image], 4000, 8, torch.Generator().manual_seed(1))
    ours = torch.tensor(sides)
    assert ours.max() <= 30 and ours.min() >= 1
    values = torch.cat([theirs, ours]).unique()
    cdf_theirs, cdf_ours = ((v[:, None] <= values).float().mean(0) for v in (theirs, ours))
    assert (cdf_theirs - cdf_ours).abs().max() < 0.04  # KS of the side lengths (5% critical value: 0.030)


def test_herdings_running_mean_tracks_the_class_mean_better_than_random_subsets():
    import torch

    from distillbench_baselines.coreset import herding_order
    features = torch.randn(300, 16, generator=torch.Generator().manual_seed(0)).double() * torch.linspace(0.2, 3, 16)
    target, chosen = features.mean(0), herding_order(features, 20)
    assert len(set(chosen)) == 20
    for k in (1, 5, 10, 20):
        herded = (features[chosen[:k]].mean(0) - target).norm()
        randoms = [(features[torch.randperm(300, generator=torch.Generator().manual_seed(s))[:k]].mean(0) - target)
                   .norm() for s in range(50)]
        assert herded < min(randoms)


def test_k_centers_covering_radius_is_below_random_subsets():
    import torch

    from distillbench_baselines.coreset import k_center_order
    features = torch.randn(300, 4, generator=torch.Generator().manual_seed(1)).double()

    def radius(rows):
        return torch.cdist(features, features[rows]).min(1).values.max()
    for k in (5, 20, 40):  # below the typical random subset's radius; from k = 20 below the best of 50
        chosen = k_center_order(features, k, torch.Generator().manual_seed(0))
        assert len(set(chosen)) == k
        randoms = torch.stack([radius(torch.randperm(300, generator=torch.Generator().manual_seed(s))[:k])
                               for s in range(50)])
        assert radius(chosen) < (randoms.min() if k >= 20 else randoms.median())
    assert k_center_order(features, 5, torch.Generator().manual_seed(0)) != \
        k_center_order(features, 5, torch.Generator().manual_seed(1))


def test_a_teacher_pool_is_resolved_from_the_cache_and_is_part_of_the_run_id(distillbench_cache, tmp_path):
    env = {"DISTILLBENCH_CACHE": str(distillbench_cache)}
    for arch in ("conv3", "conv4"):
        assert invoke("train-teacher", "--dataset", "digits", "--arch", arch, "--epochs", "1", env=env).exit_code == 0
    for pool in ("conv3", "conv3,conv4"):
        result = invoke("run", "--method", "gvbsm", "--dataset", "digits", "--ipc", "1", "--option", "iterations=2",
                        "--option", f"teacher_arch={pool}", "--root", tmp_path, env=env)
        assert result.exit_code == 0, result.output
    one, two = sorted(finished_sets(tmp_path), key=lambda p: len(json.loads((p / "manifest.json").read_text())
                                                                   ["notes"]["teachers"]))
    assert one.name != two.name
    teachers = json.loads((two / "manifest.json").read_text())["notes"]["teachers"]
    assert [t["arch"] for t in teachers] == ["conv3", "conv4"]
    missing = invoke("run", "--method", "edc", "--dataset", "digits", "--ipc", "1", "--option",
                     "teacher_arch=conv3,conv5", "--root", tmp_path, env=env)
    assert missing.exit_code == 2 and "train-teacher --dataset digits --arch conv5" in missing.stderr
