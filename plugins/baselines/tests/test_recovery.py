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
    x, generator = torch.randn(4, 3, 32, 32), torch.Generator().manual_seed(0)
    whole = [cda.crop(x, 0, generator) for _ in range(20)]
    assert all(torch.equal(v, x) or torch.equal(v, x.flip(-1)) for v in whole)  # iteration 0: whole images
    late = {cda.crop(x, 999, generator).sum().item() for _ in range(20)}
    assert len(late) > 10  # small crops, a different one each time
    assert sre2l.crop(x, 0, generator) is x


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


def test_cells_are_the_official_grid_of_patch_by_patch_cells_after_resizing_to_a_multiple():
    from distillbench_baselines.statistics import batch_moments, cells
    x = torch.randn(2, 3, 8, 8)
    grid = cells(x, 4)
    assert grid.shape == (2, 4, 48)
    for u in range(2):
        for v in range(2):
            assert torch.equal(grid[:, 2 * u + v].flatten().sort().values,
                               x[:, :, 4 * u:4 * u + 4, 4 * v:4 * v + 4].flatten().sort().values)
    assert cells(torch.randn(2, 3, 6, 5), 4).shape == (2, 4, 48)  # resized to 8 x 8 first
    moments = batch_moments(x, "conv", 4)
    assert torch.allclose(moments["cell_mean"][3], x[:, :, 4:, 4:].mean())
    assert torch.allclose(moments["cell_var"][1], x[:, :, :4, 4:].var(unbiased=False))


def test_real_targets_average_batch_moments_and_class_means_of_image_moments():
    from distillbench_baselines.statistics import real_targets
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2)).eval()
    images, labels = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 0, 1, 1, 0])
    targets = real_targets(model, [(images[:4], labels[:4]), (images[4:], labels[4:])], 6, 4, num_classes=2)
    expected = (images[:4].mean((0, 2, 3)) * 4 + images[4:].mean((0, 2, 3)) * 2) / 6
    assert torch.allclose(targets["0.mean"], expected)  # the first convolution's input: the images
    assert torch.allclose(targets["0.class.var"][1], images[labels == 1].var((2, 3), unbiased=False).mean(0))
    features = model[0](images)
    assert torch.allclose(targets["1.class.mean"][0], features[labels == 0].mean((2, 3)).mean(0), atol=1e-6)
    assert "1.mean" not in targets  # BatchNorm's global targets are its running statistics


def test_matching_sees_the_smoothed_statistics_with_the_current_gradient():
    from distillbench_baselines.statistics import Matching, batch_moments
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2)).eval()
    targets = {"0.mean": torch.zeros(3), "0.var": torch.ones(3), "0.cell_mean": torch.zeros(4),
               "0.cell_var": torch.ones(4)}
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    inner = model[0](x.detach())  # the BatchNorm's input (before the hooks: a forward of the convolution counts)
    matching = Matching(model, targets, momentum=0.8, patch=4, first_multiplier=10.0)
    model(x)
    ours = matching.loss()
    moments = batch_moments(x.detach(), "conv", 4)
    conv = sum((targets[f"0.{k}"] - 0.2 * v).norm() for k, v in moments.items())  # smoothed from 0: 0.2 m
    batch_norm = ((model[1].running_mean - 0.2 * inner.mean((0, 2, 3))).norm()
                  + (model[1].running_var - 0.2 * inner.var((0, 2, 3), unbiased=False)).norm())
    assert torch.allclose(ours, 10 * conv + batch_norm)
    ours.backward()
    assert x.grad.abs().sum() > 0
    model(x)  # a second forward: 0.8 * 0.2 m + 0.2 m
    again = sum((targets[f"0.{k}"] - 0.36 * v).norm() for k, v in moments.items())
    assert torch.allclose(matching.losses[0], again)
    matching.remove()


def test_edc_matches_half_global_half_the_batchs_class_targets():
    from distillbench_baselines.statistics import Matching
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1)).eval()
    zero = {"0.mean": torch.zeros(3), "0.var": torch.zeros(3), "0.cell_mean": torch.zeros(4),
            "0.cell_var": torch.zeros(4)}
    per_class = {k.replace(".", ".class."): torch.stack([v + 1, v + 3]) for k, v in zero.items()}
    x = torch.randn(4, 3, 8, 8)

    def loss(class_weight, labels):
        matching = Matching(model, {**zero, **per_class}, 0.0, 4, 1.0, class_weight)
        matching.labels = labels
        model(x)
        return matching.loss()
    plain = loss(0.0, torch.tensor([0, 0, 1, 1]))
    shifted = Matching(model, {k: v + 2 for k, v in zero.items()}, 0.0, 4, 1.0)  # classes 0 and 1 average 2
    model(x)
    assert torch.allclose(loss(0.5, torch.tensor([0, 0, 1, 1])), 0.5 * plain + 0.5 * shifted.loss())


def test_densification_is_the_official_eigenvalue_kl_and_vanishes_with_one_image_per_class():
    from distillbench_baselines.gvbsm import densification_loss
    views, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 0, 0, 1, 1, 2])
    pooled = views.flatten(1)
    official = sum(F.kl_div(l.log_softmax(-1), (l / 4).softmax(-1), reduction="sum")
                   for l in (torch.linalg.eigvals(pooled[labels == c] @ pooled[labels == c].T).real.float()
                             for c in range(3)))
    assert torch.allclose(densification_loss(views, labels, 4.0), official, rtol=1e-4)
    assert densification_loss(views, torch.arange(6), 4.0) == 0


def test_gvbsm_turns_through_its_teachers_and_batches_whole_classes(digits):
    from distillbench_baselines.gvbsm import GVBSM, RoundRobin
    spec, _ = digits
    method = GVBSM.from_overrides({"images_per_batch": "4"}).for_dataset(spec)
    units = method.units(3, 2)
    assert [(u.labels, u.slots) for u in units] == [((0, 0, 1, 1), (0, 1, 0, 1)), ((2, 2), (0, 1))]
    teachers, calls = [small_teacher(0), small_teacher(1), small_teacher(2)], []
    targets = [statistics_of(teacher) for teacher in teachers]
    for k, teacher in enumerate(teachers):
        teacher.register_forward_hook(lambda *_, k=k: calls.append(k))
    with RoundRobin(teachers, targets, method.options, torch.Generator()) as objective:
        for t in range(7):
            objective(torch.randn(4, 3, 16, 16, requires_grad=True), torch.tensor([0, 0, 1, 1]), t).backward()
    assert calls == [0, 1, 2, 0, 1, 2, 0]


def statistics_of(teacher):
    from distillbench_baselines.statistics import real_targets
    return real_targets(teacher, [(torch.randn(8, 3, 16, 16), torch.arange(8) % 2)], 8, 4)


def test_gvbsm_drops_convolution_terms_at_its_rate():
    from distillbench_baselines.statistics import Matching
    teacher = small_teacher()
    matching = Matching(teacher, statistics_of(teacher), 0.8, 4, 10.0, drop_rate=0.5,
                        generator=torch.Generator().manual_seed(0))
    kept = []
    for _ in range(200):
        teacher(torch.randn(4, 3, 16, 16))
        kept += [not isinstance(loss, float) for loss, (_, _, kind) in zip(matching.losses, matching.layers)
                 if kind == "conv"]
    assert 0.4 < sum(kept) / len(kept) < 0.6
    assert all(not isinstance(loss, float) for loss, (_, _, kind) in zip(matching.losses, matching.layers)
               if kind == "batch_norm")


def test_gvbsm_and_edc_pools_are_the_official_ones_in_their_order():
    from distillbench_baselines.edc import EDC
    from distillbench_baselines.gvbsm import GVBSM
    cifar, tiny, imagenet = (registry("dataset").get(n) for n in ("cifar100", "tinyimagenet", "imagenet"))
    five = ["resnet18_modified", "conv3_in", "mobilenet_v2_half", "wrn16_2", "shufflenet_v2_half"]
    assert GVBSM().recipe(cifar)["teacher_arch"].split(",") == GVBSM().recipe(tiny)["teacher_arch"].split(",") == five
    assert EDC().recipe(cifar)["teacher_arch"].split(",") == five + ["conv1_in", "conv2_in", "conv3_in_w32"]
    assert EDC().recipe(tiny)["teacher_arch"].split(",") == five
    assert [t.split(".")[0] for t in EDC().recipe(imagenet)["teacher"].split(",")] == [
        "torchvision:resnet18", "torchvision:mobilenet_v2", "torchvision:efficientnet_b0",
        "torchvision:shufflenet_v2_x0_5", "torchvision:alexnet"]
    assert all(registry("model").get(arch) for arch in five + ["conv1_in", "conv2_in", "conv3_in_w32"])


def test_edcs_collages_tile_the_lowest_loss_crops_of_the_best_images_two_by_two():
    from distillbench_baselines.edc import collages
    values = torch.randperm(140, generator=torch.Generator().manual_seed(0)).float() / 140
    images = values.view(-1, 1, 1, 1).expand(140, 3, 16, 16).clone()  # image i: uniformly values[i]
    brightness = lambda x: -x.mean((1, 2, 3))  # noqa: E731  a "loss" that prefers bright images and crops
    made = collages(images, brightness, 3, torch.Generator().manual_seed(0), keep=100, chunk=64)
    assert made.shape == (3, 3, 16, 16)
    brightest = values.sort(descending=True).values[:3]  # 4 draws of one image tie: each collage is one image
    assert torch.allclose(made, brightest.view(3, 1, 1, 1).expand_as(made), atol=1e-6)
    patterned = torch.rand(140, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    made = collages(patterned, brightness, 3, torch.Generator().manual_seed(0), keep=100, chunk=64)
    tiles = torch.stack([made[i, :, r:r + 8, c:c + 8] for i in range(3) for r in (0, 8) for c in (0, 8)])
    assert brightness(tiles)[0] < brightness(tiles)[-1]  # image 0's top left: a better crop than the last tile
    with pytest.raises(Exception, match="init=real"):
        collages(images[:10], brightness, 20, torch.Generator().manual_seed(0))


def test_edc_starts_from_its_class_collages_when_asked(digits):
    from distillbench_baselines.edc import EDC
    spec, ctx = digits
    method = prepared(EDC, spec, {"init": "collages", "iterations": "1", "lr": "1e-9", "images_per_batch": "4",
                                  "teacher_arch": "conv3"})
    from distillbench.teachers import Ensemble
    from distillbench_baselines.statistics import real_targets
    method.teacher = Ensemble([small_teacher()])
    real = [(torch.randn(20, 3, 32, 32), torch.arange(20) % 10)]
    method.targets = [real_targets(method.teacher.models[0], real, 20, 4, num_classes=10)]
    images = method.distill_unit(method.units(10, 2)[0], ctx)
    made = method.class_collages(0, ctx)
    pixels = (made * 255).to(torch.uint8)
    for image in images[:2]:  # class 0's two images: each one of class 0's collages (up to rounding)
        assert (image.int() - pixels.int()).abs().amax((1, 2, 3)).min() <= 1
