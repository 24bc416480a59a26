"""SRe2L (Yin et al., NeurIPS 2023, "Squeeze, Recover and Relabel").

Recover, from VILA-Lab/SRe2L@8d00cba (``recover/data_synthesis.py``, ``*small_dataset/recover_cifar.py``,
``recover_tiny.py``): images start as N(0, 1) in normalised space and are optimised with Adam
(betas 0.5, 0.9) under a cosine learning rate to minimise CE(teacher(x_aug), y) + r_bn * R_BN, where
R_BN = sum over BatchNorm layers of w_l (||mean_l - running_mean_l||_2 + ||var_l - running_var_l||_2)
on the augmented batch (biased variance; w = first_bn_multiplier = 10 for the first BN layer, 1 after),
and pixels are clamped to [0, 1] after each step; the last iterate is kept.  One batch holds one image of
each class (chunks of 100 classes), so a unit of work here is one IPC index, not one class.
Augmentation: a shared random roll by [0, jitter] pixels (CIFAR: jitter 4, no crop or flip); for
64 px and larger, RandomResizedCrop + flip first (Tiny: roll in [-4, 4], ImageNet: jitter 32).
Per dataset (:meth:`SRe2L.recipe`, options left unset): CIFAR ``recover_cifar.sh`` lr 0.25, 1000 iterations,
r_bn 0.01; Tiny-ImageNet ``recover_tiny.sh`` lr 0.1, 4000 iterations, r_bn 1.0; ImageNet ``recover.sh`` lr
0.25, 4000 iterations, r_bn 0.01.  Relabel is the shared evaluator's
job: the ``sre2l`` protocol is SRe2L's own (FKD labels per crop and epoch above 32 px).

Deviations: seeded initialisation and augmentation; PNG instead of JPEG (the same 8-bit pixels, truncated as the
official code truncates them, without JPEG's loss); the pixel clamp uses the teacher's normalisation (the CIFAR
script hard-codes mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)).  Checked side by side with the
official functions on one input and teacher: the loss is equal in float32, the input gradient within 1e-6
relative, the learning rates bit for bit (closing note of issue 17).
"""
from distillbench_baselines.recovery import Recovery


class SRe2L(Recovery):
    name = "sre2l"
    description = "SRe2L (NeurIPS 2023): images recovered from noise by teacher CE + BatchNorm matching"
    citation = ('Yin, Xing and Shen, "Squeeze, Recover and Relabel: Dataset Condensation at ImageNet Scale From A '
                'New Perspective", NeurIPS 2023; code: github.com/VILA-Lab/SRe2L')
    smoke_options = {"iterations": "3"}

    def recipe(self, spec) -> dict:
        """``recover_cifar.sh``, ``recover_tiny.sh``, ``recover.sh`` (ImageNet): their iterations, learning rate,
        BN weight, roll and squeeze teacher (CIFAR: ResNet-18 modified or ConvNet; here conv3 up to 32 px)."""
        tiny, large = spec.name == "tinyimagenet", spec.image_size > 64
        return {"iterations": 4000 if tiny or large else 1000, "lr": 0.1 if tiny else 0.25,
                "r_bn": 1.0 if tiny else 0.01, "jitter": 4 if spec.image_size <= 64 else 32,
                "roll": "symmetric" if tiny else "positive",
                "teacher_arch": "conv3" if spec.image_size <= 32 else "resnet18_modified" if tiny else "resnet18"}

    def notes(self, ipc: int) -> dict:
        return {"sre2l": {"deviations": "seeded initialisation and augmentation; PNG output instead of JPEG"}}
