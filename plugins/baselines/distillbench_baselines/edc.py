"""EDC (Shao, Zhou, Jiang, Li, Zhang and Wang, "Elucidating the Design Space of Dataset Condensation",
NeurIPS 2024).

G-VBSM's recovery (:mod:`distillbench_baselines.gvbsm`) with EDC's design choices, from shaoshitong/EDC@80116a7
(``Branch_*/recover/recover.py``, ``utils.py``, ``recover.sh``):

- real-image initialisation: each image starts from a real training image of its class, flipped with
  probability 1/2 (``recover.py`` L138-144, ``utils.py`` ``PreImgPathCache``, L576-594); on ImageNet from a
  random one of the class's IPC collages of the teachers' best crops (``Branch_full_ImageNet_1k/recover/
  data_synthesis_without_optim.py``, :func:`collages`);
- soft category-aware matching: every layer's statistics are matched half against the global targets and half
  against the mean of the class targets of the batch's labels (class means of per-image moments, from the same
  pass over the augmented training set), for BatchNorm and convolutions alike (``utils.py`` L208-259, L475-516);
- no densification loss, no dropped terms, no roll; the view is RandomResizedCrop with area (0.5, 1) (CIFAR-10:
  (0.08, 1)) and a flip, shared by the batch; the smoothing momentum is 0.8 everywhere;
- scripts: Adam lr 0.05; CIFAR-10 75 iterations, CIFAR-100 and Tiny-ImageNet 2000, ImageNet 1000; r_loss 0.01
  (ImageNet 0.1); per-GPU batches of 10 (CIFAR-10), 25 (CIFAR-100, Tiny over 4 GPUs), 20 (ImageNet); teacher
  pools: G-VBSM's five plus three ConvNets (depth 1, depth 2, width 32) on CIFAR, the five on Tiny, torchvision's
  ResNet-18, MobileNetV2, EfficientNet-B0, ShuffleNetV2 x0.5 and AlexNet on ImageNet.

Deviations, besides G-VBSM's: the class targets of the cell statistics are the class's cell mean and cell
variance (the official per-class files store each under the other's name, so the official loss matches the mean
to the variance); real starting images are drawn without replacement per class (the official code draws with
replacement) and resized and centre-cropped as the dataset loads them; ImageNet's collages (``init=collages``,
:func:`collages`) are scored by the whole pool (the offline script scores with the four teachers other than
AlexNet), their crops are not saved as JPEG and read back before tiling, and a class of fewer than 64 images is
one chunk; the flatness term (off in every script) is not built; small sets without a script (MNIST, digits)
use conv3 and conv4 with CIFAR-100's values.  The CIFAR pool is G-VBSM's five and ``conv1_in``, ``conv2_in``,
``conv3_in_w32``.
"""
from dataclasses import dataclass
from typing import Literal, Optional

from distillbench.api import UsageError, option
from distillbench_baselines import gvbsm, recovery

IMAGENET_POOL = gvbsm.IMAGENET_POOL + ",torchvision:alexnet.IMAGENET1K_V1"
CIFAR_POOL = gvbsm.CIFAR_POOL + ",conv1_in,conv2_in,conv3_in_w32"  # recover.py L430: + ConvNetD1, D2, W32


@dataclass(frozen=True)
class Options(gvbsm.Options):
    class_weight: float = option(0.5, "share of the class targets in each layer's loss (the scripts' 'global' "
                                      "category-aware mode: 0.5)")
    init: Optional[Literal["real", "collages"]] = option(None, "where images start: real training images, or "
                                                               "collages of the teachers' best crops; none: "
                                                               "collages on ImageNet, else real")

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.class_weight <= 1:
            raise UsageError("option class_weight must be in [0, 1]")


def collages(images, losses, ipc: int, generator, keep: int = 300, chunk: int = 64, draws: int = 4):
    """EDC's ImageNet starting images for one class (``data_synthesis_without_optim.py`` L58-199): of
    ``images`` (float [n, C, S, S] in [0, 1], squashed to S) keep the ``keep`` with the lowest teacher loss;
    cut each chunk of ``chunk`` of them ``draws`` times with one RandomResizedCrop box and flip per chunk; keep
    the ``4 ipc`` crops of lowest loss and tile them, in loss order, 2 x 2 at half size into ``ipc`` images.
    ``losses(x)`` is the teachers' per-image cross-entropy on the class."""
    import torch
    import torch.nn.functional as F
    best = images[losses(images).argsort()[:keep]]
    usable = max(chunk, len(best) // chunk * chunk) if len(best) >= chunk else len(best)  # a small class: one chunk
    crops = torch.cat([recovery.resized_crop(part, (0.08, 1.0), generator)
                       for part in best[:usable].split(chunk) for _ in range(draws)])
    if len(crops) < 4 * ipc:
        raise UsageError(f"EDC's collages need {4 * ipc} crops per class, the class gives {len(crops)}; use "
                         "--option init=real")
    size = images.shape[-1]
    tiles = F.interpolate(crops[losses(crops).argsort()[:4 * ipc]], size=(size // 2, size // 2), mode="bilinear",
                          antialias=True)
    rows = tiles.view(ipc, 2, 2, *tiles.shape[1:])  # image i: tiles 4i (top left) .. 4i + 3 (bottom right)
    return torch.cat([torch.cat([rows[:, r, 0], rows[:, r, 1]], -1) for r in (0, 1)], -2)


class EDC(gvbsm.GVBSM):
    name = "edc"
    description = "EDC (NeurIPS 2024): G-VBSM from real images, with soft category-aware statistics matching"
    citation = ('Shao, Zhou, Jiang, Li, Zhang and Wang, "Elucidating the Design Space of Dataset Condensation", '
                'NeurIPS 2024; code: github.com/shaoshitong/EDC')
    # one teacher in the smoke runs: its statistics pass is most of a small run's time
    smoke_options = {"iterations": "3", "images_per_batch": "10", "teacher_arch": "conv3"}
    Options = Options

    @property
    def class_weight(self) -> float:
        return self.options.class_weight

    @property
    def draws_real_images(self) -> bool:
        """Real starts are drawn without replacement: IPC <= the class size (collages are made per IPC)."""
        return self.options.init == "real"

    def recipe(self, spec) -> dict:
        """``Branch_*/recover/recover.sh`` (per GPU batch)."""
        size, name = spec.image_size, spec.name
        imagenet = size > 64
        recipe = {"iterations": 75 if name == "cifar10" else 1000 if imagenet else 2000, "lr": 0.05,
                  "r_loss": 0.1 if imagenet else 0.01, "jitter": 0, "roll": "positive", "momentum": 0.8,
                  "drop_rate": 0.0, "patch": 16 if imagenet else 4, "pad": 0,
                  "scale_min": 0.08 if name == "cifar10" else 0.5, "dd_weight": 0.0,
                  "images_per_batch": 10 if name == "cifar10" else 20 if imagenet else 25,
                  "init": "collages" if imagenet else "real"}
        return {**recipe, **gvbsm.teacher_pool(spec, IMAGENET_POOL, CIFAR_POOL)}

    def initial_images(self, unit, ctx, generator):
        import torch
        if self.options.init == "collages":  # each image a random collage of its class (recover.py L182-184)
            made = {label: self.class_collages(label, ctx) for label in set(unit.labels)}
            picks = torch.randint(ctx.ipc, (len(unit.labels),), generator=generator).tolist()
            return self.normalize(torch.stack([made[label][k] for label, k in zip(unit.labels, picks)]))
        images = self.real_images(unit, ctx)
        flips = torch.rand(len(images), generator=generator).to(ctx.device) < 0.5
        return torch.where(flips[:, None, None, None], images.flip(-1), images)

    def class_collages(self, label: int, ctx):
        """The class's collages ([IPC, C, S, S] in [0, 1]), made once per run (a class may span several
        batches) from a generator of the run's seed and the class."""
        import torch
        from safetensors.torch import load_file, save

        from distillbench.api import atomic, derive_seed
        path = ctx.scratch / "edc-collages" / f"class-{label:05d}.safetensors"
        with atomic.exclusive(path.with_suffix(".lock")):
            if not path.is_file():
                source = ctx.train.at_size(ctx.spec.image_size, squash=True)  # Resize((224, 224))
                index = source.indices_of(label)
                images = torch.cat(list(source.batches(index, 256))).to(ctx.device).float() / 255
                generator = torch.Generator().manual_seed(derive_seed(ctx.seed, f"edc-collages-{label}"))
                made = collages(images, lambda x: self.class_losses(x, label), ctx.ipc, generator)
                atomic.write_bytes(path, save({"collages": made.cpu().contiguous()}))
        return load_file(str(path))["collages"].to(ctx.device)

    def class_losses(self, images, label: int, batch: int = 256):
        """The pool's cross-entropy on ``label`` for each image (logits averaged over the teachers)."""
        import torch
        import torch.nn.functional as F
        with torch.inference_mode():
            logits = torch.cat([self.teacher(self.normalize(part)) for part in images.split(batch)])
        return F.cross_entropy(logits, torch.full((len(images),), label, device=images.device), reduction="none")

    def notes(self, ipc: int) -> dict:
        return {"edc": {"deviations": "class targets of the cell statistics under their own names; real starts "
                                      "without replacement, loaded as the dataset loads them; collages scored by "
                                      "the whole pool, without JPEG; no flatness term; teachers trained by "
                                      "train-teacher; rotation and smoothing "
                                      "restart per batch; seeded draws; PNG"}}
