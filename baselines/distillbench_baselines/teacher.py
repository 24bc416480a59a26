"""Methods that distil against a teacher: ``teacher=ARCH=PATH``, or the cached one for ``teacher_arch``."""
from distillbench.method import Distiller


class TeacherMethod(Distiller):
    """A Distiller whose options carry ``teacher``, ``teacher_arch`` and ``normalization``."""

    def _teacher_args(self) -> list:
        return [self.options.teacher] if self.options.teacher else []

    def model_fingerprints(self, spec, num_classes: int) -> dict:
        from distillbench import paths
        from distillbench_eval.teachers import resolve_teachers
        loaded = resolve_teachers(self._teacher_args(), self.options.teacher_arch, spec, num_classes, paths.cache_dir())
        return {"teachers": [info["sha256"] for _, info in loaded]}

    def setup(self, ctx) -> None:
        from distillbench import paths
        from distillbench_eval.evaluator import normalizer
        from distillbench_eval.teachers import load_ensemble
        self.teacher, self.teacher_infos = load_ensemble(self._teacher_args(), self.options.teacher_arch, ctx.spec,
                                                         ctx.train.num_classes, paths.cache_dir(), ctx.device)
        self.normalize = normalizer(ctx.spec, self.options, ctx.device)

    def finalize(self, ctx, folder) -> dict:
        if not hasattr(self, "teacher_infos"):
            self.setup(ctx)
        return {"teachers": self.teacher_infos}
