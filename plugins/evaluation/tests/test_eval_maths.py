"""The evaluator's maths: loss, mixing, schedule, optimiser groups, batch sizes, protocols."""
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from distillbench.errors import UsageError
from distillbench.augment import draw_mix, mix, resized_crop_params, shift_params, warp
from distillbench_eval.models import convnet
from distillbench_eval.protocols import PROTOCOLS, resolve
from distillbench_eval.training import kd_loss, lr_factor, param_groups


def test_kd_loss_is_batchmean_kl_at_temperature_without_t_squared():
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    p = F.softmax(t / 20, 1)
    manual = (p * (p.log() - F.log_softmax(s / 20, 1))).sum() / 4
    assert torch.allclose(kd_loss(s, t, 20.0), manual, atol=1e-6)
    assert kd_loss(t, t, 20.0).abs() < 1e-6


def test_cutmix_pastes_one_box_from_the_permutation_and_lambda_is_the_kept_area():
    x = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 3, 16, 16).contiguous()
    for seed in range(20):
        perm, lam, box = draw_mix("cutmix", 6, 16, torch.Generator().manual_seed(seed), random.Random(seed), 1.0)
        mixed = mix(x, perm, lam, box)
        kept = (mixed == x).all(1)  # [6, 16, 16]: pixels still from the image itself
        moved = perm != torch.arange(6)
        for i in torch.nonzero(moved).flatten():
            assert kept[i].float().mean().item() == pytest.approx(lam)
            assert torch.equal(mixed[i][~kept[i].expand(3, -1, -1)].unique(), x[perm[i], 0, 0, 0].unique()) \
                or kept[i].all()


def test_random_crops_stay_in_the_image_and_flips_mirror():
    x = torch.rand(64, 3, 32, 32)
    out = warp(x, resized_crop_params(64, 32, torch.Generator().manual_seed(0), "cpu", scale_min=1.0, flip=False))
    assert torch.allclose(out, x, atol=1e-5)  # scale 1, ratio clipped to the image: identity
    flipped = warp(x, shift_params(64, 32, torch.Generator().manual_seed(0), "cpu", pad=0, flip=True))
    is_flip = torch.isclose(flipped, x.flip(-1), atol=1e-5).flatten(1).all(1)
    is_same = torch.isclose(flipped, x, atol=1e-5).flatten(1).all(1)
    assert (is_flip | is_same).all() and 10 < is_flip.sum() < 54
    crops = warp(x, resized_crop_params(64, 32, torch.Generator().manual_seed(1), "cpu"))
    assert crops.shape == x.shape and torch.isfinite(crops).all()


def test_half_cosine_schedule_ends_at_half():
    assert lr_factor("half_cosine", 0, 300) == 1.0
    assert lr_factor("half_cosine", 150, 300) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor("half_cosine", 300, 300) == pytest.approx(0.5)
    assert lr_factor("cosine", 300, 300) == pytest.approx(0.0)


def test_no_weight_decay_on_biases_and_batchnorm():
    decay, no_decay = param_groups(convnet(3, 10, 32), 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) == 4  # 3 convs + the linear layer


def test_protocol_overrides_and_rejection(tmp_path):
    p = resolve("rded", {"epochs": "7", "temperature": "4"})
    assert p.settings.epochs == 7 and p.settings.temperature == 4.0 and p.settings.mix == "cutmix"
    assert p.resolved()["settings"]["epochs"] == 7 and PROTOCOLS["rded"].settings.epochs == 300
    with pytest.raises(UsageError, match="unknown option 'epoch' for protocol 'rded'; valid keys: .*epochs"):
        resolve("rded", {"epoch": "7"})
    with pytest.raises(UsageError, match="unknown protocol 'nope'; choose one of: .*rded"):
        resolve("nope", {})
    file = tmp_path / "mine.json"
    file.write_text(json.dumps({"name": "mine", "version": 2, "settings": {"epochs": 5, "labels": "hard"}}))
    assert resolve(str(file), {}).settings.labels == "hard" and resolve(str(file), {}).version == 2
    file.write_text('{"name": "broken", "settings": {"epochz": 1}}')
    with pytest.raises(UsageError, match="cannot read protocol file"):
        resolve(str(file), {})


def test_no_flips_on_digit_datasets():
    from distillbench.plugins import registry
    from distillbench_eval.protocols import for_dataset
    rded = resolve("rded", {})
    assert for_dataset(rded, registry("dataset").get("mnist5k")).settings.flip is False
    assert for_dataset(rded, registry("dataset").get("cifar10")).settings.flip is True


def test_crops_are_torchvisions_resized_crop_and_flip_image_by_image():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    boxes = resized_crop_params(64, 32, torch.Generator().manual_seed(1), "cpu", scale_min=0.08)
    expected = []
    for image, (left, top, width, height, flip) in zip(x, boxes.int().tolist()):
        crop = TF.resized_crop(image, top, left, height, width, [32, 32], InterpolationMode.BILINEAR, antialias=True)
        expected.append(TF.hflip(crop) if flip else crop)
    assert (warp(x, boxes) - torch.stack(expected)).abs().max() < 1e-5
    shifts = shift_params(64, 32, torch.Generator().manual_seed(2), "cpu", pad=4)
    padded = [TF.crop(TF.pad(image, 4), top + 4, left + 4, 32, 32) for image, (left, top, *_) in
              zip(x, shifts.int().tolist())]
    padded = [TF.hflip(p) if flip else p for p, flip in zip(padded, shifts[:, 4].tolist())]
    assert (warp(x, shifts) - torch.stack(padded)).abs().max() < 1e-6


def test_crop_boxes_are_distributed_as_torchvisions_random_resized_crop():
    from torchvision.transforms import RandomResizedCrop
    torch.manual_seed(0)
    image = torch.zeros(1, 32, 32)
    theirs = torch.tensor([RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(20000)])
    ours = resized_crop_params(20000, 32, torch.Generator().manual_seed(0), "cpu", scale_min=0.08)
    for a, b in ((theirs[:, 2] * theirs[:, 3], ours[:, 2] * ours[:, 3]), (theirs[:, 1], ours[:, 0])):
        values = torch.cat([a, b]).float().unique()
        cdf_a, cdf_b = ((v.float()[:, None] <= values).float().mean(0) for v in (a, b))
        assert (cdf_a - cdf_b).abs().max() < 0.02  # two-sample KS statistic (5% critical value: 0.0136)
