"""G-VBSM (Shao et al., "Generalized Large-Scale Data Condensation via Various Backbone and Statistical
Matching", CVPR 2024).

SRe2L's recovery (:mod:`distillbench_baselines.recovery`) against several teachers, matching convolution
statistics besides BatchNorm's (:mod:`distillbench_baselines.statistics`), from
shaoshitong/G_VBSM_Dataset_Condensation@1ed80b0 (``Branch_*/recover/data_synthesis_with_svd_with_db_with_all_
statistic.py``, ``utils.py``, ``recover.sh``):

- batches run class-major: the (class, IPC index) pairs of all classes, each class's together, cut into batches
  of ``images_per_batch`` (L105-121), so a batch holds whole classes and several images of each;
- iteration t uses one teacher, t mod K of the pool (L150-152); its loss is CE + r_loss * (the statistics loss,
  first convolution x ``first_multiplier``) + dd_weight * L_DD, where L_DD, "data densification", sums over
  the batch's classes KL(softmax(l / tau) || softmax(l)) of the eigenvalues l of the Gram matrix of the class's
  views average-pooled to 32 x 32 (L161-181; zero with one image per class);
- the statistics are smoothed with momentum 0.8 (ImageNet 0.4) and each convolution's term is dropped with
  probability 0.4 (ImageNet 0) per forward; the real targets of the convolutions come from one pass of each
  teacher over the augmented training set (batches of 64);
- the view: RandomCrop(32, pad 4) (64 px: pad 8; ImageNet: RandomResizedCrop (0.08, 1)) and a flip, shared by
  the batch, then a roll in [0, 32];
- scripts: Adam lr 0.05 (ImageNet 0.1), 4000 iterations, r_loss 0.01, dd_weight 1, tau 4, first_multiplier 10;
  batches of 100 on CIFAR-10's one GPU, 50 per GPU on CIFAR-100 and Tiny-ImageNet, 40 per GPU on ImageNet
  (statistics are per GPU); teachers: ResNet-18 (CIFAR stem), ConvNet-W128 (instance norm), MobileNetV2 (x0.5),
  WRN-16-2, ShuffleNetV2 (x0.5) on CIFAR and Tiny (here ``resnet18_modified``, ``conv3_in``, ``mobilenet_v2_half``,
  ``wrn16_2``, ``shufflenet_v2_half``, each checked against the official class: the same logits from the same
  weights); torchvision's ResNet-18, MobileNetV2, EfficientNet-B0, ShuffleNetV2 x0.5 (ImageNet weights) on
  ImageNet.

Deviations: every batch starts the teacher rotation and the smoothing afresh (the official loop carries both
across batches: with 4000 iterations and 4 or 5 teachers the rotation is the same); the eigenvalues come from
``eigvalsh`` (the Gram matrix is symmetric; the official ``eigvals(...).real`` gives the same values in another
order, and the loss does not depend on the order); the pool's teachers are trained by ``train-teacher`` (the
official ones by the repository's ``squeeze/train.py``); small sets without a script (MNIST, digits) use conv3
and conv4; the clamp uses the teachers' normalisation (the
CIFAR-10 branch uses CIFAR-100's); seeded draws everywhere; PNG instead of ImageNet's JPEG.
"""
from dataclasses import dataclass
from typing import Optional

from distillbench.api import UsageError, option
from distillbench_baselines import recovery, statistics

IMAGENET_POOL = ("torchvision:resnet18.IMAGENET1K_V1,torchvision:mobilenet_v2.IMAGENET1K_V1,"
                 "torchvision:efficientnet_b0.IMAGENET1K_V1,torchvision:shufflenet_v2_x0_5.IMAGENET1K_V1")
STATISTICS_BATCH = 64  # real images per teacher call in the statistics pass (the CIFAR and Tiny loaders' batch)


@dataclass(frozen=True)
class Options(recovery.Common):
    images_per_batch: Optional[int] = option(None, "images recovered together (whole classes first); none: the "
                                                   "dataset's script, per GPU")
    r_loss: Optional[float] = option(None, "weight of the statistics loss; none: the dataset's script")
    first_multiplier: float = option(10.0, "extra weight of the first matched layer (the first convolution)")
    momentum: Optional[float] = option(None, "smoothing of the synthetic statistics; none: 0.8, ImageNet 0.4")
    drop_rate: Optional[float] = option(None, "probability of leaving a convolution's term out of a forward; "
                                              "none: 0.4, ImageNet 0")
    patch: Optional[int] = option(None, "side of the cells of the convolutions' cell statistics; none: 4, "
                                        "ImageNet 16")
    pad: Optional[int] = option(None, "RandomCrop's zero padding of the view; 0: RandomResizedCrop from "
                                      "scale_min; none: 4 at 32 px, 8 at 64, 0 beyond")
    scale_min: Optional[float] = option(None, "RandomResizedCrop's smallest area where pad is 0; none: 0.08")
    dd_weight: Optional[float] = option(None, "weight of the data-densification loss; none: the script's 1")
    tau: float = option(4.0, "temperature of the densification loss's target")

    def __post_init__(self):
        super().__post_init__()
        if self.images_per_batch is not None and self.images_per_batch < 1:
            raise UsageError("option images_per_batch must be at least 1")
        if self.drop_rate is not None and not 0 <= self.drop_rate < 1:
            raise UsageError("option drop_rate must be in [0, 1)")


CIFAR_POOL = "resnet18_modified,conv3_in,mobilenet_v2_half,wrn16_2,shufflenet_v2_half"  # recover.py L331-343


def teacher_pool(spec, imagenet_pool: str, cifar_pool: str = CIFAR_POOL) -> dict:
    """The recipe's teachers: the published ImageNet pool; CIFAR's and Tiny-ImageNet's, cached
    (``train-teacher``); conv3 and conv4 on small sets without a script (MNIST, digits)."""
    if spec.image_size > 64:
        return {"teacher": imagenet_pool}
    if spec.image_size <= 32 and spec.name not in ("cifar10", "cifar100"):
        return {"teacher_arch": "conv3,conv4"}
    return {"teacher_arch": cifar_pool if spec.image_size <= 32 else CIFAR_POOL}


def densification_loss(views, labels, tau: float):
    """G-VBSM's L_DD: for each class of the batch, KL(softmax(l / tau) || softmax(l)) over the eigenvalues l of
    the Gram matrix of its views pooled to 32 x 32 and flattened, summed over the classes."""
    import torch
    import torch.nn.functional as F
    pooled = F.adaptive_avg_pool2d(views, (32, 32)).flatten(1)
    loss = views.new_zeros(())
    for label in labels.unique():
        rows = pooled[labels == label]
        eigenvalues = torch.linalg.eigvalsh(rows @ rows.T)
        target = (eigenvalues / tau).softmax(-1).detach()
        loss = loss + F.kl_div(eigenvalues.log_softmax(-1), target, reduction="sum")
    return loss


class RoundRobin:
    """One teacher per iteration, in turn: CE + r_loss * its statistics loss (+ dd_weight * L_DD)."""

    def __init__(self, teachers, targets, options, generator, class_weight: float = 0.0):
        self.teachers, self.targets, self.options = teachers, targets, options
        self.generator, self.class_weight = generator, class_weight

    def __enter__(self):
        opts = self.options
        self.matchings = [statistics.Matching(teacher, targets, opts.momentum, opts.patch, opts.first_multiplier,
                                              self.class_weight, opts.drop_rate, self.generator)
                          for teacher, targets in zip(self.teachers, self.targets)]
        return self

    def __exit__(self, *_):
        for matching in self.matchings:
            matching.remove()

    def __call__(self, view, labels, iteration: int):
        import torch.nn.functional as F
        turn = iteration % len(self.teachers)
        matching = self.matchings[turn]
        matching.labels = labels
        loss = F.cross_entropy(self.teachers[turn](view), labels) + self.options.r_loss * matching.loss()
        if self.options.dd_weight:
            loss = loss + self.options.dd_weight * densification_loss(view, labels, self.options.tau)
        return loss


class GVBSM(recovery.Recovery):
    name = "gvbsm"
    description = "G-VBSM (CVPR 2024): SRe2L's recovery over a teacher pool, BatchNorm and convolution statistics"
    citation = ('Shao, Wang, Jiang, Zhang and Li, "Generalized Large-Scale Data Condensation via Various Backbone '
                'and Statistical Matching", CVPR 2024; code: github.com/shaoshitong/G_VBSM_Dataset_Condensation')
    # one teacher in the smoke runs: its statistics pass is most of a small run's time
    smoke_options = {"iterations": "3", "images_per_batch": "10", "teacher_arch": "conv3"}
    Options = Options
    class_weight = 0.0  # EDC matches class statistics too

    def recipe(self, spec) -> dict:
        """``Branch_*/recover/recover.sh`` and the argparse defaults they leave (per GPU batch)."""
        size = spec.image_size
        imagenet = size > 64
        recipe = {"iterations": 4000, "lr": 0.1 if imagenet else 0.05, "r_loss": 0.01, "jitter": 32,
                  "roll": "positive", "momentum": 0.4 if imagenet else 0.8, "drop_rate": 0.0 if imagenet else 0.4,
                  "patch": 16 if imagenet else 4, "pad": 0 if imagenet else 4 if size <= 32 else 8,
                  "scale_min": 0.08, "dd_weight": 1.0,
                  "images_per_batch": 40 if imagenet else 100 if spec.name != "cifar100" and size <= 32 else 50}
        return {**recipe, **teacher_pool(spec, IMAGENET_POOL)}

    def units(self, num_classes: int, ipc: int):
        from distillbench.api import Unit
        pairs = [(label, slot) for label in range(num_classes) for slot in range(ipc)]
        per = self.options.images_per_batch
        return [Unit(f"images-{start:07d}", tuple(label for label, _ in pairs[start:start + per]),
                     tuple(slot for _, slot in pairs[start:start + per])) for start in range(0, len(pairs), per)]

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.targets = [{key: value.to(ctx.device) for key, value in self.real_targets(teacher, info, ctx).items()}
                        for teacher, info in zip(self.teacher.models, self.teacher_infos)]

    def real_targets(self, teacher, info: dict, ctx) -> dict:
        """The teacher's real statistics: computed once per root (under a lock, so that concurrent runs and
        ranks compute them once) and kept in the shared folder."""
        from safetensors.torch import load_file, save

        from distillbench.api import atomic, json_digest
        opts = self.options
        inputs = {"train": ctx.train.fingerprint(), "teacher": info["sha256"], "fed": info["fed"],
                  "patch": opts.patch, "pad": opts.pad, "scale_min": opts.scale_min,
                  "classes": bool(self.class_weight), "seed": ctx.seed}
        path = ctx.shared / "real-statistics" / f"{json_digest(inputs)[:16]}.safetensors"
        with atomic.exclusive(path.with_suffix(".lock")):
            if not path.is_file():
                targets = statistics.real_targets(teacher, self.augmented_real_batches(ctx), len(ctx.train),
                                                  opts.patch, ctx.train.num_classes if self.class_weight else 0)
                atomic.write_bytes(path, save({key: value.contiguous() for key, value in targets.items()}))
        return load_file(str(path))

    def augmented_real_batches(self, ctx):
        """The training set in a seeded order, batches of 64, each image cropped and flipped as the official
        statistics loaders do (RandomCrop with ``pad``, or RandomResizedCrop, and a flip), normalised."""
        import torch

        from distillbench.api import derive_seed, resized_crop_params, shift_params, warp
        generator = torch.Generator().manual_seed(derive_seed(ctx.seed, "real-statistics"))
        order = torch.randperm(len(ctx.train), generator=generator)
        size, pad = ctx.spec.image_size, self.options.pad
        chunks = order.split(STATISTICS_BATCH)
        for chunk, images in zip(ctx.progress(chunks, desc="real statistics"),
                                 ctx.train.batches(order, STATISTICS_BATCH)):
            boxes = (shift_params(len(chunk), size, generator, "cpu", pad) if pad else
                     resized_crop_params(len(chunk), size, generator, "cpu", self.options.scale_min))
            pixels = images.to(ctx.device).float() / 255
            yield self.normalize(warp(pixels, boxes.to(ctx.device))), ctx.train.targets[chunk]

    def crop(self, x, iteration: int, generator):
        if self.options.pad:
            return recovery.padded_crop(x, self.options.pad, generator)
        return recovery.resized_crop(x, (self.options.scale_min, 1.0), generator)

    def objective(self, unit, ctx, generator):
        return RoundRobin(list(self.teacher.models), self.targets, self.options, generator, self.class_weight)

    def notes(self, ipc: int) -> dict:
        return {self.name: {"deviations": "teacher rotation and smoothing restart per batch; eigvalsh for the Gram "
                                          "eigenvalues; teachers trained by train-teacher; seeded draws; PNG"}}
