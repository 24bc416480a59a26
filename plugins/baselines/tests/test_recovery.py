"""The SRe2L family's shared recovery engine, and what each member changes in it: CDA's crop curriculum, DWA's
real starting images and adjusted teacher."""
import math

import pytest
import torch
import torch.nn.functional as F

from distillbench.datasets import DataSource
from distillbench.method import RunContext
from distillbench.plugins import registry
from distillbench.teachers import normalizer
from distillbench_baselines.cda import CDA, curriculum_min_scale
from distillbench_baselines.dwa import DWA, directed_weight_adjustment
from distillbench_baselines.sre2l import SRe2L


def small_teacher(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.normal_()
            layer.running_var.uniform_(0.5, 2)
    return model.eval().requires_grad_(False)


@pytest.fixture
def digits(tmp_path):
    spec = registry("dataset").get("digits")
    return spec, RunContext(spec, DataSource().load(spec, "train"), 2, 7, "cpu", tmp_path, tmp_path)


def prepared(method_class, spec, overrides):
    method = method_class.from_overrides(overrides).for_dataset(spec)
    method.teacher, method.normalize = small_teacher(), normalizer(spec, "dataset", "cpu")
    return method


def reference_sre2l(teacher, unit, ctx, options, normalize):
    """SRe2L's CIFAR recovery written out step by step (``recover_cifar.py``: N(0, 1) start, Adam (0.5, 0.9),
    cosine lr, roll in [0, jitter], CE + r_bn (10 R_first + R_rest), per-channel clamp, truncation to 8 bits),
    drawing from the unit's generator in the adapter's order."""
    generator = ctx.generator(unit)
    size, labels = ctx.spec.image_size, torch.tensor(unit.labels)
    inputs = torch.randn(len(labels), 3, size, size, generator=generator).requires_grad_(True)
    norms = [m for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen = {}
    handles = [m.register_forward_hook(lambda m, i, o: seen.__setitem__(m, i[0])) for m in norms]
    optimizer = torch.optim.Adam([inputs], lr=options.lr, betas=[0.5, 0.9], eps=1e-8)
    low, high = (-normalize.mean / normalize.std).flatten(), ((1 - normalize.mean) / normalize.std).flatten()
    for t in range(options.iterations):
        optimizer.param_groups[0]["lr"] = 0.5 * (1 + math.cos(math.pi * t / options.iterations)) * options.lr
        shift = torch.randint(0, options.jitter + 1, (2,), generator=generator).tolist()
        ce = F.cross_entropy(teacher(torch.roll(inputs, shifts=shift, dims=(2, 3))), labels)
        r_bn = sum((10.0 if k == 0 else 1.0) * ((seen[m].mean(dim=(0, 2, 3)) - m.running_mean).norm(2)
                                                + (seen[m].var(dim=(0, 2, 3), unbiased=False) - m.running_var)
                                                .norm(2)) for k, m in enumerate(norms))
        optimizer.zero_grad()
        (ce + options.r_bn * r_bn).backward()
        optimizer.step()
        with torch.no_grad():
            for c in range(3):
                inputs[:, c].clamp_(low[c], high[c])
    for handle in handles:
        handle.remove()
    pixels = (inputs.detach() * normalize.std + normalize.mean).clamp(0, 1)
    return (pixels * 255).to(torch.uint8)


def test_sre2l_on_the_engine_is_byte_identical_to_its_loop_written_out(digits):
    spec, ctx = digits
    method = prepared(SRe2L, spec, {"iterations": "6", "classes_per_batch": "4", "lr": "0.5", "r_bn": "0.3"})
    for unit in method.units(10, 2)[:3]:
        ours = method.distill_unit(unit, ctx)
        assert torch.equal(ours, reference_sre2l(method.teacher, unit, ctx, method.options, method.normalize))
        assert ours.float().std() > 10  # recovered images, not a constant


def test_cdas_curriculum_shrinks_the_smallest_crop_from_whole_images_to_0_08():
    assert curriculum_min_scale(0, 1000, "cosine", 1.0) == 1.0
    assert curriculum_min_scale(500, 1000, "cosine", 1.0) == pytest.approx(0.08 + 0.92 * 0.5)
    assert curriculum_min_scale(250, 1000, "cosine", 1.0) == pytest.approx(0.08 + 0.92 * (1 + 2**-0.5) / 2)
    assert curriculum_min_scale(250, 1000, "linear", 0.5) == pytest.approx(0.08 + 0.92 * 0.5)
    assert curriculum_min_scale(499, 1000, "step", 0.5) == 1.0
    assert curriculum_min_scale(500, 1000, "step", 0.5) == curriculum_min_scale(999, 1000, "cosine", 0.5) == 0.08
    scales = [curriculum_min_scale(t, 400, "cosine", 1.0) for t in range(400)]
    assert all(a > b for a, b in zip(scales, scales[1:]))


def test_cda_crops_at_every_size_along_its_curriculum_and_sre2l_not_on_cifar():
    cifar = registry("dataset").get("cifar10")
    cda, sre2l = CDA.from_overrides({}).for_dataset(cifar), SRe2L.from_overrides({}).for_dataset(cifar)
    assert [cda.crop_scale(t, 32) for t in (0, 500)] == [(1.0, 1.0), (pytest.approx(0.54), 1.0)]
    assert sre2l.crop_scale(0, 32) is None and sre2l.crop_scale(0, 64) == (0.08, 1.0)


def test_cdas_recipes_are_the_readmes_commands():
    tiny, imagenet = (CDA().recipe(registry("dataset").get(name)) for name in ("tinyimagenet", "imagenet"))
    assert tiny == {"iterations": 4000, "lr": 0.4, "r_bn": 0.05, "jitter": 4, "roll": "positive",
                    "teacher_arch": "resnet18_modified"}
    assert imagenet == {"iterations": 4000, "lr": 0.25, "r_bn": 0.01, "jitter": 32, "roll": "positive",
                        "teacher_arch": "resnet18"}


def test_directed_weight_adjustment_climbs_the_loss_by_rho_and_keeps_the_running_statistics():
    teacher, view, labels = small_teacher(), torch.randn(10, 3, 16, 16), torch.arange(10)
    before = [p.clone() for p in teacher.parameters()]
    statistics = [b.clone() for b in teacher.buffers()]
    loss_before = F.cross_entropy(teacher(view), labels)
    directed_weight_adjustment(teacher, view, labels, 1, 0.05)
    moved = torch.cat([(p - q).flatten() for p, q in zip(teacher.parameters(), before)])
    assert moved.norm() == pytest.approx(0.05, rel=1e-4)  # one step: exactly rho along the normalised gradient
    assert (moved != 0).sum() > len(moved) // 2  # every kind of parameter moves, BatchNorm affine included
    assert F.cross_entropy(teacher(view), labels) > loss_before
    assert all(torch.equal(b, s) for b, s in zip(teacher.buffers(), statistics))
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher = small_teacher()
    directed_weight_adjustment(teacher, view, labels, 12, 0.05)
    total = torch.cat([(p - q).flatten() for p, q in zip(teacher.parameters(), before)]).norm()
    assert 0.02 < total <= 0.05 + 1e-6  # twelve steps of rho / 12: at most rho


def test_dwa_starts_from_real_images_and_never_changes_the_loaded_teacher(digits):
    spec, ctx = digits
    method = prepared(DWA, spec, {"iterations": "1", "classes_per_batch": "10", "lr": "1e-9", "rho": "0.5"})
    weights = [p.clone() for p in method.teacher.parameters()]
    first, second = method.units(10, 2)
    images = method.distill_unit(first, ctx)
    for c in range(10):  # each image is, up to rounding, one real image of its class
        real = ctx.train.load(ctx.train.indices_of(c)).int()
        assert (images[c].int() - real).abs().amax((1, 2, 3)).min() <= 1
    assert all(torch.equal(p, q) for p, q in zip(method.teacher.parameters(), weights))
    assert not torch.equal(images, method.distill_unit(second, ctx))  # another IPC index, other real images
