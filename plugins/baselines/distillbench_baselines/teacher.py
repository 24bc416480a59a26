"""Methods that distill against a teacher: ``teacher=ARCH=PATH``, or the cached one for ``teacher_arch``."""
from distillbench.api import Distiller


def default_teacher_arch(spec) -> str:
    """RDED's observer per dataset (``scripts/*.sh``): conv3 up to 32 px, conv4 at 64 (Tiny-ImageNet), else
    ResNet-18."""
    size = spec.image_size
    return "conv3" if size <= 32 else "conv4" if size <= 64 else "resnet18"


class TeacherMethod(Distiller):
    """A Distiller whose options carry ``teacher`` (``ARCH=PATH``, several comma-separated), ``teacher_arch``
    (the cached teachers' architectures, several comma-separated) and ``normalization``."""

    def _teacher_args(self) -> list:
        return self.options.teacher.split(",") if self.options.teacher else []

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        from distillbench.api import cache_dir, resolve_teachers
        loaded = resolve_teachers(self._teacher_args(), self.options.teacher_arch, spec, num_classes, cache_dir())
        return {"teachers": [info["sha256"] for _, info in loaded]}

    def setup(self, ctx) -> None:
        from distillbench.api import cache_dir, load_ensemble, normalizer
        self.teacher, self.teacher_infos = load_ensemble(self._teacher_args(), self.options.teacher_arch, ctx.spec,
                                                         ctx.train.num_classes, cache_dir(), ctx.device,
                                                         self.options.normalization)
        self.normalize = normalizer(ctx.spec, self.options.normalization, ctx.device)

    def finalize(self, ctx, folder, unit_notes) -> dict:
        return {"teachers": self.teacher_infos}
