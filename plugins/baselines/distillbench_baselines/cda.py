"""CDA (Yin & Shen, "Dataset Distillation via Curriculum Data Synthesis in Large Data Era", TMLR 2024).

SRe2L's recovery (:mod:`distillbench_baselines.recovery`) with a curriculum on the crop: the lower bound of
RandomResizedCrop's area falls from 1 (whole images, global structure first) to 0.08 (local detail) over the
first ``milestone`` fraction of the iterations, then stays at 0.08 (VILA-Lab/SRe2L@8d00cba
``CDA/recover_cda_in1k.py`` L51-75; ``recover_cda_tiny.py`` the same at 64 px).  Modes: ``step`` (1 until the
milestone), ``linear``, ``cosine`` (0.08 + 0.92 (1 + cos(pi t / (milestone T))) / 2).  The crop is applied at
every size, with a flip, then a roll in [0, jitter] (both scripts draw ``random.randint(0, jitter)``).

Per dataset (``CDA/README.md`` commands; options left unset): Tiny-ImageNet lr 0.4, r_bn 0.05, 4000 iterations,
jitter 4, ResNet-18 with a 3x3 stem; ImageNet-1K lr 0.25, r_bn 0.01, 4000 iterations, jitter 32, ResNet-18;
both cosine with milestone 1.  The argparse default milestone 0 (no curriculum) is not what the README runs.

Deviations: CDA publishes no script below 64 px; there its curriculum runs on SRe2L's CIFAR values (lr 0.25,
r_bn 0.01, 1000 iterations, jitter 4, conv3 teacher) and, unlike ``recover_cifar.py``, crops.  Seeded
initialisation and augmentation; PNG instead of JPEG; the clamp uses the teacher's normalisation.
"""
import math
from dataclasses import dataclass
from typing import Literal

from distillbench.api import UsageError, option
from distillbench_baselines import recovery

SMALLEST_SCALE = 0.08  # RandomResizedCrop's default lower bound, where the curriculum ends


@dataclass(frozen=True)
class Options(recovery.Options):
    curriculum: Literal["step", "linear", "cosine"] = option("cosine", "how the crop's smallest area falls from 1 to "
                                                                        "0.08 (the README's runs: cosine)")
    milestone: float = option(1.0, "fraction of the iterations over which it falls (the README's runs: 1)")

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.milestone <= 1:
            raise UsageError("option milestone must be between 0 and 1 (a fraction of the iterations)")


def curriculum_min_scale(iteration: int, iterations: int, mode: str, milestone: float) -> float:
    """The smallest crop area RandomResizedCrop may draw at ``iteration`` (``recover_cda_in1k.py`` L56-66)."""
    end = milestone * iterations
    if iteration >= end:
        return SMALLEST_SCALE
    progress = iteration / end
    falling = {"step": 1.0, "linear": 1 - progress, "cosine": (1 + math.cos(math.pi * progress)) / 2}[mode]
    return SMALLEST_SCALE + (1 - SMALLEST_SCALE) * falling


class CDA(recovery.Recovery):
    name = "cda"
    description = "CDA (TMLR 2024): SRe2L's recovery with a curriculum from whole-image to small crops"
    citation = ('Yin and Shen, "Dataset Distillation via Curriculum Data Synthesis in Large Data Era", TMLR 2024; '
                'code: github.com/VILA-Lab/SRe2L/tree/main/CDA')
    smoke_options = {"iterations": "3"}
    Options = Options

    def recipe(self, spec) -> dict:
        """The README's Tiny-ImageNet and ImageNet-1K commands; SRe2L's CIFAR values below 64 px."""
        if spec.image_size <= 32:
            return {"iterations": 1000, "lr": 0.25, "r_bn": 0.01, "jitter": 4, "roll": "positive",
                    "teacher_arch": "conv3"}
        tiny = spec.image_size <= 64
        return {"iterations": 4000, "lr": 0.4 if tiny else 0.25, "r_bn": 0.05 if tiny else 0.01,
                "jitter": 4 if tiny else 32, "roll": "positive",
                "teacher_arch": "resnet18_modified" if tiny else "resnet18"}

    def crop(self, x, iteration: int, generator):
        opts = self.options
        smallest = curriculum_min_scale(iteration, opts.iterations, opts.curriculum, opts.milestone)
        return recovery.resized_crop(x, (smallest, 1.0), generator)

    def notes(self, ipc: int) -> dict:
        return {"cda": {"deviations": "seeded initialisation and augmentation; PNG output instead of JPEG; below "
                                      "64 px (no official script) SRe2L's CIFAR values with the curriculum crop"}}
