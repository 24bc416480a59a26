"""Named, versioned evaluation protocols, each faithful to the official code it is named after.

A protocol is a name, a version, the source it follows and a :class:`Settings`; ``--set key=value``
overrides a setting (unknown keys are rejected) and the protocol, resolved for the dataset and the
student, is stored with every result.  A protocol can also be a JSON file
``{"name": ..., "version": ..., "settings": {...}}``.  Settings left as None are filled per dataset,
IPC and student by the ``rules`` of the protocol's source (:func:`resolve_for`), as the official scripts
do: batch size, epochs, the patch factor, the temperature and RDED's CIFAR-100 conv3 exception.
``distillbench protocols --show NAME`` prints every setting with the line of the source it comes from.

Changing what a protocol does bumps its version: records of another version never share a table row
(see ``distillbench.store``).  Versions: rded 2 became RDED's own validation (ImageNet normalisation,
ShufflePatches, its batch sizes, the best after 80%); rded 3, d3hr 2, dd-ranking 2, stored-labels 2 and
hard-label 2 crop whole-pixel boxes whose edges resize as torchvision's (before: sub-pixel boxes that blended in
the pixels around them).
"""
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional

from distillbench.api import UsageError, build_options, choices_hint

RDED = "LINs-lab/RDED@3f6453d"  # the commits read (RDED 3f6453d8, D3HR 8ba351d6, SRe2L 8d00cba3)
D3HR = "lin-zhao-resoLve/D3HR@8ba351d"
SRE2L = "VILA-Lab/SRe2L@8d00cba"


@dataclass(frozen=True)
class Settings:
    labels: Optional[Literal["online", "stored", "fkd", "hard"]] = "online"  # fkd: per crop and epoch (fkd.py)
    epochs: Optional[int] = 300  # None: the rules' per-dataset count
    temperature: Optional[float] = 20.0  # None: 20 with CutMix, 4 with mixup (RDED, D3HR)
    mix: Optional[Literal["cutmix", "mixup", "none"]] = "cutmix"
    mix_alpha: Optional[float] = 1.0  # Beta(alpha, alpha); None: 1 with CutMix, 0.8 with mixup (RDED, D3HR)
    augment: Optional[Literal["resized_crop", "shift", "none"]] = "resized_crop"  # none: no crop, no flip (ARS)
    shuffle_patches: Optional[int] = 1  # ShufflePatches(factor) before the crop; None: RDED's factor for the size
    crop_scale_min: Optional[float] = 0.08  # resized_crop: smallest area fraction; None: 1 / shuffle_patches
    shift: int = 4  # shift: RandomCrop padding in pixels
    flip: bool = True
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: Optional[float] = None  # None: the student's learning rate in the source's table
    weight_decay: float = 0.01
    decay_all: Optional[bool] = False  # weight decay on every parameter (DD-Ranking), not only on weights with ndim > 1
    beta1: float = 0.9  # AdamW beta1, or SGD momentum
    beta2: float = 0.999
    schedule: Literal["half_cosine", "cosine", "constant"] = "half_cosine"
    batch_size: Optional[int] = None  # None: the rules' batch size for the IPC and class count
    rules: Literal["rded", "d3hr", "sre2l"] = "rded"  # whose per-dataset rules fill the settings left as None
    eval_every: int = 10
    eval_after: float = 0.8  # periodic evaluations only after epoch (0-based) > this fraction of the epochs (RDED)
    eval_last: Optional[int] = None  # instead: only after epoch > epochs - eval_last (D3HR: the last 9 epochs)
    report: Optional[Literal["final", "best"]] = "final"  # what the source reports: the last epoch's, or the best
    extra_train_forward: bool = False  # RDED's second student forward per step (train mode, no grad): BN moves twice
    normalization: Literal["dataset", "imagenet"] = "dataset"
    teacher_arch: Optional[str] = None  # None: same architecture as the student
    teachers: int = 1  # cached teachers of teacher_arch averaged: seeds 0..n-1 (train-teacher --seeds)
    teacher_train_mode: Optional[bool] = False  # the teacher labels in train mode: batch statistics (SRe2L CIFAR)
    fkd_seed: int = 42  # labels=fkd: the seed the whole stored plan is drawn from (SRe2L's --fkd-seed)
    amp: bool = True  # bf16 autocast on CUDA and on CPUs with native bf16

    def __post_init__(self):
        ranges = [("epochs", self.epochs is None or self.epochs >= 1, ">= 1"),
                  ("temperature", self.temperature is None or self.temperature > 0, "> 0"),
                  ("mix_alpha", self.mix_alpha is None or self.mix_alpha > 0, "> 0"),
                  ("shuffle_patches", self.shuffle_patches is None or self.shuffle_patches >= 1, ">= 1"),
                  ("crop_scale_min", self.crop_scale_min is None or 0 < self.crop_scale_min <= 1, "in (0, 1]"),
                  ("shift", self.shift >= 0, ">= 0"), ("lr", self.lr is None or self.lr > 0, "> 0"),
                  ("weight_decay", self.weight_decay >= 0, ">= 0"), ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"),
                  ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
                  ("batch_size", self.batch_size is None or self.batch_size >= 1, ">= 1"),
                  ("eval_every", self.eval_every >= 1, ">= 1"), ("eval_after", 0 <= self.eval_after <= 1, "in [0, 1]"),
                  ("eval_last", self.eval_last is None or self.eval_last >= 1, ">= 1"),
                  ("teachers", self.teachers >= 1, ">= 1")]
        for key, ok, allowed in ranges:
            if not ok:
                raise UsageError(f"protocol setting {key}={getattr(self, key)} is out of range: it must be {allowed}")

    def evaluates_after(self, epoch: int) -> bool:
        """Whether the test set is scored after ``epoch`` (0-based); the last epoch always is."""
        if epoch == self.epochs - 1:
            return True
        first = self.epochs - self.eval_last if self.eval_last is not None else self.eval_after * self.epochs
        return (epoch + 1) % self.eval_every == 0 and epoch > first


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    description: str
    settings: Settings
    source: str = ""  # the official code it follows: repository@commit and files
    sources: dict = field(default_factory=dict, compare=False)  # setting -> where the source sets it
    repeats: int = 3  # student seeds when --repeats is not given

    def resolved(self) -> dict:
        return {"name": self.name, "version": self.version, "settings": asdict(self.settings)}


_RDED_SOURCES = {
    "labels": "validation/main.py L206-232: the observer relabels every batch online",
    "epochs": "scripts/*.sh: --re-epochs 300",
    "temperature": "argument.py L271-274: 20 with CutMix, 4 with mixup",
    "mix": "argument.py: mix_type cutmix, probability 1 (utils.py L119-144)",
    "mix_alpha": "argument.py L124-135, validation/utils.py L138-152: Beta(1, 1) for CutMix, Beta(0.8, 0.8) for mixup",
    "shuffle_patches": "validation/main.py L115-135, utils.py L164-188: ShufflePatches(factor); factor 1 for "
                       "CIFAR and Tiny, 2 for ImageNet (scripts/*.sh)",
    "crop_scale_min": "validation/main.py L115-135: RandomResizedCrop(scale=(1/factor, 1))",
    "flip": "validation/main.py L115-135: RandomHorizontalFlip",
    "optimizer": "validation/main.py L86-92: AdamW",
    "lr": "argument.py L277-306: adamw_lr per student; L309-315: 2e-3 for CIFAR-100 conv3",
    "weight_decay": "validation/main.py L86-92, utils.py L67-84: 0.01, none on biases and BN",
    "beta1": "validation/main.py L86-92: betas (0.9, 0.999)", "beta2": "validation/main.py L86-92",
    "schedule": "validation/main.py L95-102: LambdaLR 0.5 (1 + cos(pi e / 2E))",
    "batch_size": "argument.py L234-262: 100/50/10 for IPC 50/10/1, x2 for 100 or 1000 classes, Tiny 100, "
                  "capped at IPC x classes; L309-315: 25 for CIFAR-100 conv3 to conv3",
    "eval_every": "validation/main.py L179-185: epoch % 10 == 9 (or the last)", "eval_after": "validation/main.py "
                  "L179-185: and epoch > 0.8 E", "report": "validation/main.py L188-192: the best of those evaluations",
    "extra_train_forward": "validation/main.py L204-216: the student also runs on the batch in train mode "
                           "under no_grad (for logging), moving BN statistics a second time",
    "normalization": "synthesize/utils.py L77-86, validation/main.py L111-113: ImageNet mean/std for every dataset",
    "teacher_arch": "scripts/*.sh: the student's own architecture",
    "teacher_train_mode": "validation/main.py L203: teacher_model.eval()",
    "teachers": "validation/main.py L53-73: one teacher (the observer)",
}

_D3HR_SOURCES = {
    "labels": "validation/validate.py L160-185: the teacher relabels every batch online",
    "epochs": "argument.py L130, L230, L237, L244: 300 for ImageNet and Tiny, 400 for CIFAR (commit 0b07084)",
    "temperature": "argument.py L200-204: 20 with CutMix, 4 with mixup, whatever the flag says",
    "mix": "argument.py L99-105: mix_type cutmix, every batch, in place (validate_utils.py L104-105, L117-123)",
    "mix_alpha": "argument.py L140-151: Beta(1, 1) for CutMix, Beta(0.8, 0.8) for mixup",
    "shuffle_patches": "data_utils.py L276-303: no ShufflePatches", "crop_scale_min": "data_utils.py L276-303: "
                       "RandomResizedCrop(scale=(0.08, 1))", "flip": "data_utils.py L276-303: RandomHorizontalFlip",
    "optimizer": "validate.py L89-95: AdamW", "lr": "argument.py L279-310: adamw_lr per student",
    "weight_decay": "validate.py L89-95, validate_utils.py L62-77: 0.01 on weights with ndim > 1",
    "beta1": "argument.py L189-192: betas (0.9, 0.999)", "beta2": "argument.py L189-192",
    "schedule": "validate.py L98-105: LambdaLR 0.5 (1 + cos(pi e / 2E))",
    "batch_size": "argument.py L247-266: 100/50/15 for IPC >= 50 / >= 10 / less, x2 for 100 classes (not 1000), "
                  "capped at IPC x classes",
    "eval_every": "validate.py L131-138: every epoch ...", "eval_last": "validate.py L131-138: ... with epoch > 290 "
                  "(ImageNet, Tiny) or > 390 (CIFAR): the last 9", "report": "validate.py L140-146: the best of "
                  "those; L43-49: mean and population std over the repeats (validate.sh: --repeat 5)",
    "extra_train_forward": "validate.py L158-175: the student also runs on the (in-place CutMixed) batch in train "
                           "mode under no_grad, for logging, moving BN statistics a second time",
    "normalization": "data_utils.py L276-303: ImageNet mean/std for every dataset",
    "teacher_arch": "validate.sh: the student's own architecture",
    "teacher_train_mode": "validate.py L157: teacher_model.eval()",
    "teachers": "validate.py L55-62: one teacher",
}

_DD_RANKING_SOURCES = {
    "labels": "ddranking/metrics/soft_label.py: soft_label_mode M, the teacher relabels every batch online",
    "epochs": "configs (eval branch) SRe2L/ImageNet1K/IPC10.yaml L59-70: 300 epochs",
    "temperature": "SRe2L/ImageNet1K/IPC10.yaml L52-56: KL at T = 20, no T^2 (loss/kl.py L12-19)",
    "mix": "SRe2L/ImageNet1K/IPC10.yaml L17-20: cutmix every step (aug/cutmix.py L28-34)",
    "mix_alpha": "SRe2L/ImageNet1K/IPC10.yaml L17-20: beta 1.0",
    "crop_scale_min": "SRe2L/ImageNet1K/IPC10.yaml L22-34: RandomResizedCrop(scale [0.08, 1])",
    "flip": "SRe2L/ImageNet1K/IPC10.yaml L22-34: RandomHorizontalFlip",
    "optimizer": "train_and_eval.py L104-112: AdamW (0.9, 0.999)",
    "beta1": "train_and_eval.py L104-112",
    "beta2": "train_and_eval.py L104-112",
    "lr": "RDED configs: syn_lr 0.001 (soft-label methods)",
    "weight_decay": "SRe2L/ImageNet1K/IPC10.yaml L59-70: 0.01",
    "decay_all": "train_and_eval.py L104-112: on every parameter",
    "schedule": "train_and_eval.py L121-127: cosine = LambdaLR 0.5 (1 + cos(pi e / 2E))",
    "eval_every": "soft_label.py L130, L374-384: (epoch + 1) % 20 == 0",
    "eval_after": "soft_label.py: from the start",
    "report": "soft_label.py L374-384: the best top-1",
    "batch_size": "DEVIATION: each method's config sets its own (SRe2L ImageNet 1024, RDED 100 / 50); here RDED's rule",
    "normalization": "SRe2L/ImageNet1K/IPC10.yaml L22-34: the dataset's mean and std (ImageNet's on ImageNet)",
    "teacher_train_mode": "soft_label.py: the teacher model in eval mode",
    "teachers": "soft_label.py L157-172: the models of teacher_model_names; configs/Demo_LRS_Soft_Label.yaml L14: "
                "one, ResNet-18-BN",
}

_SRE2L_SOURCES = {  # small: SRe2L/*small_dataset/relabel_cifar.py (.sh); large: SRe2L/relabel/, SRe2L/validate/
    "labels": "small (up to 32 px): relabel_cifar.py L133-140, the teacher labels each mixed batch online; large: "
              "relabel/generate_soft_label.py L176-224, FKD labels per crop and epoch, replayed by validate/"
              "train_FKD.py (also on Tiny-ImageNet, whose SRe2L post-training is another repository's online KD)",
    "epochs": "small: relabel_cifar.sh --epochs 400; large: relabel.sh --epochs 300 (train_FKD.py default 300)",
    "temperature": "small: relabel_cifar.py L107, T = 30 hard-coded; large: train_FKD.sh -T 20",
    "mix": "small: relabel_cifar.py L111-121, mixup on every batch; large: relabel.sh --mix-type cutmix",
    "mix_alpha": "small: relabel_cifar.py L111, Beta(0.8, 0.8); large: utils_fkd.py L184-217, Beta(1, 1)",
    "augment": "small: relabel_cifar.py L49-56, RandomCrop(32, padding 4) + flip; large: relabel.sh "
               "RandomResizedCrop(224, scale (0.08, 1)) + flip",
    "crop_scale_min": "relabel.sh --min-scale-crops 0.08", "shift": "relabel_cifar.py L51: padding 4",
    "flip": "relabel_cifar.py L52; generate_soft_label.py L181-186: RandomHorizontalFlip",
    "optimizer": "small: relabel_cifar.py L104; large: train_FKD.py L157-159: AdamW",
    "lr": "relabel_cifar.py L104, train_FKD.py defaults: 1e-3", "weight_decay": "relabel_cifar.py L104, "
          "train_FKD.py --adamw-weight-decay: 0.01", "beta1": "default betas", "beta2": "default betas",
    "decay_all": "small: relabel_cifar.py L104, AdamW(net.parameters()) decays every parameter; large: "
                 "validate/utils.py L59-73, only weights with ndim > 1",
    "schedule": "relabel_cifar.py L106 CosineAnnealingLR(T_max=epochs); train_FKD.py L161-163 0.5 (1 + cos(pi e/E))",
    "batch_size": "small: relabel_cifar.sh --batch-size 128; large: relabel.sh -b 1024 (the replay must match; "
                  "train_FKD.sh accumulates 2 micro-batches of 512, so its BN statistics are over 512)",
    "eval_every": "relabel_cifar.py L191-197, train_FKD.py L183: every 10 epochs (theirs at epoch 0, 10, ...; "
                  "here after 10, 20, ...) and the last",
    "eval_after": "from the start",
    "report": "small: relabel_cifar.py L172-186 keeps the last checkpoint; large: train_FKD.py L192-201 the best",
    "normalization": "the dataset's (relabel_cifar.py L54: CIFAR's; generate_soft_label.py L174: ImageNet's)",
    "teacher_arch": "relabel_cifar.py L85-92, relabel.sh -a resnet18: the squeeze model (pass it with --teacher)",
    "teacher_train_mode": "small: relabel_cifar.py L85-92, the teacher is never put in eval mode, so it labels "
                          "with batch statistics; large: generate_soft_label.py L210 model.eval()",
    "fkd_seed": "relabel.sh --fkd-seed 42 (generate_soft_label.py L191-192)",
    "extra_train_forward": "none in SRe2L",
    "teachers": "small: relabel_cifar.py L85-89, one squeeze model; large: relabel.sh -a resnet18, one",
}

PROTOCOLS = {p.name: p for p in [
    Protocol("rded", 3, "RDED's validation: ShufflePatches + RandomResizedCrop(1/factor, 1) + flip, CutMix, online "
             "teacher at T=20, AdamW, half cosine, 300 epochs, ImageNet normalisation, best after 80%",
             Settings(shuffle_patches=None, crop_scale_min=None, temperature=None, mix_alpha=None, report="best",
                      extra_train_forward=True, normalization="imagenet", rules="rded"),
             source=f"{RDED} validation/main.py, argument.py", sources=_RDED_SOURCES),
    Protocol("d3hr", 2, "D3HR's validate.py: RandomResizedCrop(0.08, 1) + flip, CutMix, online teacher at T=20, "
             "AdamW, half cosine, 300 epochs (CIFAR 400), ImageNet normalisation, best of the last 9 epochs",
             Settings(epochs=None, temperature=None, mix_alpha=None, eval_every=1, eval_last=10, report="best",
                      extra_train_forward=True, normalization="imagenet", rules="d3hr"),
             source=f"{D3HR} validation/validate.py, argument.py, utils/data_utils.py", sources=_D3HR_SOURCES,
             repeats=5),
    Protocol("d3hr-five-teachers", 1, "D3HR's validate_fiveteacher.py: d3hr with the logits of five teachers of the "
             "student's architecture (seeds 0-4: train-teacher --seeds 0-4) averaged, the best after epoch 280",
             Settings(epochs=None, temperature=None, mix_alpha=None, eval_every=1, eval_last=20, report="best",
                      extra_train_forward=True, normalization="imagenet", rules="d3hr", teachers=5),
             source=f"{D3HR} validation/validate_fiveteacher.py", sources={
                 **_D3HR_SOURCES,
                 "teachers": "validate_fiveteacher.py L55-70, L185-189: five ResNet-18s trained with seeds 0-4, "
                             "their logits averaged before the softmax",
                 "eval_last": "validate_fiveteacher.py L151: epoch > 280 (of ImageNet's 300; here the last 19 of "
                              "any length)"},
             repeats=5),
    Protocol("dd-ranking", 2, "DD-Ranking's soft-label evaluation: RandomResizedCrop(0.08, 1) + flip, CutMix, online "
             "teacher at T=20, AdamW lr 1e-3 with weight decay 0.01 on every parameter, half cosine, 300 epochs, "
             "best of every 20th epoch, 5 runs (its student is ResNet-18-BN: resnet18_modified up to 64 px, "
             "resnet18 above)",
             Settings(lr=1e-3, decay_all=True, eval_every=20, eval_after=0.0, report="best"),
             source="NUS-HPC-AI-Lab/DD-Ranking@b8b0966 (configs: eval branch @9ee9a16)", sources=_DD_RANKING_SOURCES,
             repeats=5),
    Protocol("sre2l", 1, "SRe2L's relabel: up to 32 px its CIFAR recipe (online labels from the teacher in train "
             "mode, RandomCrop + flip, mixup, T=30, 400 epochs, batch 128, the last epoch); above, its ImageNet FKD "
             "recipe (labels stored per crop and epoch, RandomResizedCrop + flip, CutMix, T=20, 300 epochs, batch "
             "1024, the best); AdamW 1e-3, full cosine",
             Settings(labels=None, epochs=None, temperature=None, mix=None, mix_alpha=None, augment=None, lr=1e-3,
                      decay_all=None, schedule="cosine", batch_size=None, rules="sre2l", eval_after=0.0, report=None,
                      teacher_train_mode=None),
             source=f"{SRE2L} SRe2L/relabel, SRe2L/validate, SRe2L/*small_dataset/relabel_cifar.py",
             sources=_SRE2L_SOURCES),
    Protocol("stored-labels", 2, "as rded v1, but the teacher's soft labels are computed once per image and stored "
             "with the set; mixed batches mix the stored labels", Settings(labels="stored")),
    Protocol("teacher", 1, "how `train-teacher` trains teachers: SRe2L's CIFAR squeeze recipe (SGD 0.1, momentum "
             "0.9, wd 5e-4, cosine, RandomCrop(pad 4) + flip, batch 128, 200 epochs) on hard labels",
             Settings(labels="hard", mix="none", augment="shift", optimizer="sgd", lr=0.1, weight_decay=5e-4,
                      schedule="cosine", epochs=200, batch_size=128, eval_every=10, eval_after=0.0),
             source=f"{SRE2L} SRe2L/*small_dataset/squeeze"),
    Protocol("hard-label", 2, "no teacher: cross-entropy on the true labels with mixup (alpha 1), as D3HR's "
             "validate_hardlabel.py, but 300 epochs (that script trains imagewoof for 1000-2000)",
             Settings(labels="hard", mix="mixup", mix_alpha=1.0), source=f"{D3HR} validation/validate_hardlabel.py"),
]}


def resolve(name: str, overrides: dict) -> Protocol:
    """The named protocol (or JSON file) with ``--set`` overrides applied."""
    if name.endswith(".json"):
        protocol = load_file(Path(name))
    elif name in PROTOCOLS:
        protocol = PROTOCOLS[name]
    else:
        raise UsageError(f"unknown protocol '{name}'; choose one of: {choices_hint(PROTOCOLS)} (or a .json file)")
    if not overrides:
        return protocol
    changed = build_options(Settings, overrides, owner=f"protocol '{protocol.name}'")
    explicit = {k: getattr(changed, k) for k in overrides}
    return replace(protocol, settings=replace(protocol.settings, **explicit))


def for_dataset(protocol: Protocol, spec) -> Protocol:
    """The protocol as it runs on ``spec``: no horizontal flips where they change the class (digits)."""
    if protocol.settings.flip and not spec.mirror_invariant:
        return replace(protocol, settings=replace(protocol.settings, flip=False))
    return protocol


CHOICES = {  # what the rules choose for a setting left as None, beyond the numbers filled in resolve_for
    "default": {"labels": "online", "mix": "cutmix", "augment": "resized_crop", "decay_all": False, "report": "final",
                "teacher_train_mode": False},
    # SRe2L/*small_dataset/relabel_cifar.py: online labels from the squeeze model left in train mode, mixup, T 30
    "sre2l-small": {"labels": "online", "mix": "mixup", "augment": "shift", "decay_all": True, "report": "final",
                    "teacher_train_mode": True, "temperature": 30.0, "epochs": 400},
    # SRe2L/relabel + validate/train_FKD.py: FKD labels, CutMix, T 20, the best checkpoint
    "sre2l": {"labels": "fkd", "mix": "cutmix", "augment": "resized_crop", "decay_all": False, "report": "best",
              "teacher_train_mode": False, "temperature": 20.0, "epochs": 300},
}


def choices(rules: str, spec) -> dict:
    if rules != "sre2l":
        return CHOICES["default"]
    return CHOICES["sre2l-small" if spec.image_size <= 32 else "sre2l"]


def resolve_for(protocol: Protocol, spec, student: str, student_lr: float, ipc: int, num_classes: int,
                set_size: int) -> Protocol:
    """The protocol with every setting left as None filled by its rules, for this dataset, student and set."""
    s = for_dataset(protocol, spec).settings
    s = replace(s, **{k: v for k, v in choices(s.rules, spec).items() if getattr(s, k) is None})
    cifar100_conv3 = (s.rules == "rded" and spec.name == "cifar100" and student == "conv3"
                      and (s.teacher_arch or student) == "conv3")
    factor = s.shuffle_patches or (1 if spec.image_size <= 64 else 2)
    filled = {
        "epochs": s.epochs or (400 if spec.name in ("cifar10", "cifar100") else 300),
        "temperature": s.temperature or (4.0 if s.mix == "mixup" else 20.0),
        "mix_alpha": s.mix_alpha or (0.8 if s.mix == "mixup" else 1.0),
        "shuffle_patches": factor,
        "crop_scale_min": s.crop_scale_min or 1 / factor,
        "lr": s.lr or (2e-3 if cifar100_conv3 else student_lr),
        "batch_size": s.batch_size or (25 if cifar100_conv3 else
                                       batch_size(s.rules, spec, ipc or set_size // num_classes, num_classes,
                                                  set_size)),
    }
    return replace(protocol, settings=replace(s, **filled))


def load_file(path: Path) -> Protocol:
    try:
        data = json.loads(path.read_text())
        name, version, given = str(data["name"]), int(data["version"]), data.get("settings", {})
        settings = build_options(Settings, {k: str(v) for k, v in given.items() if v is not None},
                                 owner=f"protocol file {path}")
        left = {k: None for k, v in given.items() if v is None}  # null: left to the protocol's rules
        return Protocol(name, version, str(data.get("description", "")), replace(settings, **left))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"cannot read protocol file {path}: {type(exc).__name__}: {exc}; expected JSON "
                         '{"name": ..., "version": 1, "settings": {...}}') from None


def batch_size(rules: str, spec, ipc: int, num_classes: int, set_size: int) -> int:
    """The student batch size of the rules' source, capped at the set size.

    rded (``argument.py`` L233-262): 100/50/10 for IPC 50/10/1 (IPC in between: the next lower of these),
    doubled for 100 or 1000 classes, always 100 on Tiny-ImageNet.  d3hr (``argument.py`` L246-270):
    100/50/15 for IPC >= 50 / >= 10 / less, doubled for 100 classes.  sre2l: 128 up to 32 px
    (``relabel_cifar.sh``), else 1024 (``relabel.sh``, ``train_FKD.sh``)."""
    if rules == "sre2l":
        base = 128 if spec.image_size <= 32 else 1024
    elif rules == "d3hr":
        base = (100 if ipc >= 50 else 50 if ipc >= 10 else 15) * (2 if num_classes == 100 else 1)
    elif spec.name == "tinyimagenet":
        base = 100
    else:
        base = (100 if ipc >= 50 else 50 if ipc >= 10 else 10) * (2 if num_classes in (100, 1000) else 1)
    return min(base, set_size)


def describe(name: str, dataset=None, ipc: int = 10, student: str = "conv3") -> list[str]:
    """Lines that show protocol ``name``: its source, then each setting, its value (resolved for ``dataset``,
    ``ipc`` and ``student`` when a dataset is given) and the line of the source that sets it."""
    from distillbench.api import registry
    protocol = resolve(name, {})
    if dataset is not None:
        spec, model = registry("dataset").get(dataset), registry("model").get(student)
        classes = spec.num_classes or 10
        protocol = resolve_for(protocol, spec, student, model.adamw_lr, ipc, classes, ipc * classes)
    where = f" for {dataset}, IPC {ipc}, student {student}" if dataset else " (None: filled per dataset by its rules)"
    lines = [f"{protocol.name} v{protocol.version}: {protocol.description}",
             f"source: {protocol.source or 'distillbench'}", f"repeats: {protocol.repeats}", f"settings{where}:"]
    values = {key: str(value) for key, value in asdict(protocol.settings).items()}
    width, value_width = max(map(len, values)), max(map(len, values.values()))
    for key, value in values.items():
        lines.append(f"  {key:<{width}}  {value:<{value_width}}  {protocol.sources.get(key, '')}".rstrip())
    return lines
