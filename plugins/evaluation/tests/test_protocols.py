"""Each protocol does what its source does: settings pinned to the official code, one row per setting, and
the behaviour behind the settings (the whole-image crop of factor 1, ShufflePatches, when the test set is
scored, RDED's second forward)."""
import pytest
import torch

from distillbench.datasets import TensorImageSet
from distillbench.plugins import registry
from distillbench.augment import shuffle_patches
from distillbench_eval.protocols import PROTOCOLS, resolve_for
from distillbench_eval.training import BatchMaker

# (protocol, dataset, IPC, student) -> the settings its official code uses there (see `protocols --show`).
RDED_COMMON = {"labels": "online", "epochs": 300, "temperature": 20.0, "mix": "cutmix", "mix_alpha": 1.0,
               "augment": "resized_crop", "optimizer": "adamw", "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999,
               "schedule": "half_cosine", "eval_every": 10, "eval_after": 0.8, "eval_last": None, "report": "best",
               "extra_train_forward": True, "normalization": "imagenet", "teacher_arch": None}
D3HR_COMMON = {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 0.08, "eval_every": 1, "eval_last": 10}
SRE2L_COMMON = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999,
                "schedule": "cosine", "flip": True, "eval_every": 10, "eval_after": 0.0, "extra_train_forward": False,
                "normalization": "dataset", "shuffle_patches": 1, "teacher_arch": None}
SRE2L_FKD = {"labels": "fkd", "epochs": 300, "temperature": 20.0, "mix": "cutmix", "mix_alpha": 1.0,
             "augment": "resized_crop", "crop_scale_min": 0.08, "decay_all": False, "report": "best",
             "teacher_train_mode": False, "fkd_seed": 42}
EXPECTED = [
    ("rded", "cifar10", 10, "conv3", {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 1.0, "lr": 1e-3,
                                      "batch_size": 50}),
    ("rded", "cifar10", 1, "resnet18_modified", {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 1.0,
                                                 "lr": 1e-3, "batch_size": 10}),
    ("rded", "cifar100", 50, "conv3", {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 1.0, "lr": 2e-3,
                                       "batch_size": 25}),
    ("rded", "cifar100", 50, "resnet18_modified", {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 1.0,
                                                   "lr": 1e-3, "batch_size": 200}),
    ("rded", "tinyimagenet", 1, "conv4", {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 1.0, "lr": 1e-3,
                                          "batch_size": 100}),
    ("rded", "tinyimagenet", 50, "conv4", {**RDED_COMMON, "shuffle_patches": 1, "crop_scale_min": 1.0, "lr": 1e-3,
                                           "batch_size": 100}),
    ("rded", "imagenet", 10, "resnet18", {**RDED_COMMON, "shuffle_patches": 2, "crop_scale_min": 0.5, "lr": 1e-3,
                                          "batch_size": 100}),
    ("rded", "imagenet", 10, "mobilenet_v2", {**RDED_COMMON, "shuffle_patches": 2, "crop_scale_min": 0.5,
                                              "lr": 2.5e-3, "batch_size": 100}),
    ("d3hr", "imagenet", 10, "resnet18", {**D3HR_COMMON, "lr": 1e-3, "batch_size": 50}),
    ("d3hr", "imagenet", 1, "resnet18", {**D3HR_COMMON, "lr": 1e-3, "batch_size": 15}),
    ("d3hr", "cifar10", 50, "conv3", {**D3HR_COMMON, "epochs": 400, "lr": 1e-3, "batch_size": 100}),
    ("d3hr", "cifar100", 10, "resnet18_modified", {**D3HR_COMMON, "epochs": 400, "lr": 1e-3, "batch_size": 100}),
    ("d3hr", "tinyimagenet", 10, "resnet18_modified", {**D3HR_COMMON, "lr": 1e-3, "batch_size": 50}),
    ("dd-ranking", "imagenet", 10, "resnet18", {
        "labels": "online", "epochs": 300, "temperature": 20.0, "mix": "cutmix", "mix_alpha": 1.0,
        "shuffle_patches": 1, "crop_scale_min": 0.08, "flip": True, "optimizer": "adamw", "lr": 1e-3,
        "weight_decay": 0.01, "decay_all": True, "beta1": 0.9, "beta2": 0.999, "schedule": "half_cosine",
        "eval_every": 20, "eval_after": 0.0, "report": "best", "extra_train_forward": False,
        "normalization": "dataset"}),
    ("sre2l", "cifar100", 50, "resnet18_modified", {**SRE2L_COMMON, "labels": "online", "epochs": 400,
                                                    "temperature": 30.0, "mix": "mixup", "mix_alpha": 0.8,
                                                    "augment": "shift", "shift": 4, "decay_all": True,
                                                    "batch_size": 128, "report": "final", "teacher_train_mode": True}),
    ("sre2l", "imagenet", 10, "resnet18", {**SRE2L_COMMON, **SRE2L_FKD, "batch_size": 1024}),
    ("sre2l", "imagenet", 1, "resnet18", {**SRE2L_COMMON, **SRE2L_FKD, "batch_size": 1000}),  # the whole set
    ("sre2l", "tinyimagenet", 100, "resnet18_modified", {**SRE2L_COMMON, **SRE2L_FKD, "batch_size": 1024}),
]


def resolved(name, dataset, ipc, student):
    spec, model = registry("dataset").get(dataset), registry("model").get(student)
    return resolve_for(PROTOCOLS[name], spec, student, model.adamw_lr, ipc, spec.num_classes,
                       ipc * spec.num_classes).settings


@pytest.mark.parametrize("name, dataset, ipc, student, expected", EXPECTED)
def test_settings_are_the_sources(name, dataset, ipc, student, expected):
    settings = resolved(name, dataset, ipc, student)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_every_setting_of_a_faithful_protocol_names_its_source():
    for name in ("rded", "d3hr", "d3hr-five-teachers", "dd-ranking", "sre2l"):
        protocol = PROTOCOLS[name]
        unsourced = {"augment", "shift", "rules", "amp", "eval_after" if name.startswith("d3hr") else "eval_last",
                     "decay_all", "shuffle_patches", "extra_train_forward", "teacher_arch",
                     "fkd_seed"} - set(protocol.sources)
        assert set(vars(protocol.settings)) - unsourced <= set(protocol.sources), name
        assert protocol.source.split("@")[1][:7] in ("3f6453d", "8ba351d", "b8b0966", "8d00cba")


def batch_of(settings, images):
    return BatchMaker(images, torch.arange(len(images)), settings, lambda x: x, "cpu", seed=0).batch(
        torch.arange(len(images))).x


def test_with_factor_1_the_rded_crop_is_the_whole_image():
    from dataclasses import replace
    settings = replace(resolved("rded", "cifar10", 10, "conv3"), flip=False, mix="none")
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(batch_of(settings, images), images.float() / 255, atol=1e-5)
    d3hr = replace(resolved("d3hr", "cifar10", 10, "conv3"), flip=False, mix="none")
    assert not torch.allclose(batch_of(d3hr, images), images.float() / 255, atol=1e-2)  # scale 0.08..1 crops


def test_shuffle_patches_permutes_whole_strips_per_image():
    x = torch.arange(16, dtype=torch.float).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = shuffle_patches(x, torch.Generator().manual_seed(0), 2)
    assert torch.equal(shuffle_patches(x, torch.Generator().manual_seed(0), 1), x)
    halves = [(slice(0, 2), slice(0, 2)), (slice(0, 2), slice(2, 4)), (slice(2, 4), slice(0, 2)),
              (slice(2, 4), slice(2, 4))]
    for image, source in zip(out, x):
        blocks = {tuple(image[0, r, c].flatten().tolist()) for r, c in halves}
        assert blocks == {tuple(source[0, r, c].flatten().tolist()) for r, c in halves}  # the same 2x2 patches
    orders = {tuple(image[0, :, 0].tolist()) + tuple(image[0, 0, :].tolist()) for image in out}
    assert len(orders) == 4  # every column and row order occurs


@pytest.mark.parametrize("name, dataset, epochs, scored", [
    ("rded", "cifar10", 300, [249, 259, 269, 279, 289, 299]),
    ("d3hr", "imagenet", 300, list(range(291, 300))),
    ("d3hr", "cifar10", 400, list(range(391, 400))),
    ("hard-label", "cifar10", 300, [249, 259, 269, 279, 289, 299]),
    ("dd-ranking", "imagenet", 300, list(range(19, 300, 20))),
])
def test_the_test_set_is_scored_when_the_source_scores_it(name, dataset, epochs, scored):
    settings = resolved(name, dataset, 10, "conv3")
    assert settings.epochs == epochs
    assert [epoch for epoch in range(epochs) if settings.evaluates_after(epoch)] == scored


def test_rded_moves_batch_norm_statistics_twice_per_step():
    from dataclasses import replace

    from distillbench.teachers import Normalizer
    from distillbench_eval.training import train_model
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 10
    settings = replace(resolved("rded", "cifar10", 2, "conv3"), labels="hard", epochs=1, mix="none")
    means = []
    for twice in (False, True):
        torch.manual_seed(0)
        model = registry("model").get("conv3").build(10, 32)
        train_model(model, (images, labels), TensorImageSet(images, labels, range(10)),
                    replace(settings, extra_train_forward=twice),
                    batch_size=20, lr=1e-3, normalize=Normalizer([0.5] * 3, [0.5] * 3, "cpu"), device="cpu", seed=0,
                    show_progress=False)
        bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        means.append(bn.running_mean.clone())
    momentum = 0.1
    assert not torch.allclose(means[0], means[1])
    # one update: 0.1 m; two with the same batch: 0.1 m + 0.9 * 0.1 m = 0.19 m
    assert torch.allclose(means[1], means[0] * (1 - (1 - momentum) ** 2) / momentum, rtol=1e-4, atol=1e-6)


def test_dd_ranking_decays_every_parameter_where_rded_spares_biases_and_batch_norm():
    from distillbench_eval.training import make_optimizer
    model = registry("model").get("conv3").build(10, 32)
    for name, every in (("dd-ranking", True), ("rded", False)):
        groups = make_optimizer(model, resolved(name, "cifar10", 10, "conv3"), 1e-3).param_groups
        decayed = sum(len(g["params"]) for g in groups if g["weight_decay"] > 0)
        assert (decayed == len(list(model.parameters()))) == every


def test_a_protocol_file_leaves_null_settings_to_the_rules_and_takes_none_as_a_choice(tmp_path):
    import json

    from distillbench_eval.protocols import load_file
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "version": 1, "settings": {"mix": "none", "epochs": None,
                                                                          "augment": "none", "lr": 0.01}}))
    protocol = load_file(path)
    assert (protocol.settings.mix, protocol.settings.augment, protocol.settings.epochs, protocol.settings.lr) == \
        ("none", "none", None, 0.01)
