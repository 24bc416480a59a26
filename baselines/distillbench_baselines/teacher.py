"""Methods that distil against a teacher: ``teacher=ARCH=PATH``, or the cached one for ``teacher_arch``."""
from distillbench.method import Distiller


class TeacherMethod(Distiller):
    """A Distiller whose options carry ``teacher``, ``teacher_arch`` and ``normalization``."""

    def setup(self, ctx) -> None:
        from distillbench import paths
        from distillbench_eval.evaluator import normalizer
        from distillbench_eval.teachers import Ensemble, resolve_teachers
        args = [self.options.teacher] if self.options.teacher else []
        loaded = resolve_teachers(args, self.options.teacher_arch, ctx.spec, ctx.train.num_classes,
                                  paths.cache_dir())
        self.teacher = Ensemble([model for model, _ in loaded]).to(ctx.device).eval()
        self.normalize = normalizer(ctx.spec, self.options, ctx.device)
        self.teacher_infos = [info for _, info in loaded]

    def finalize(self, ctx, folder) -> dict:
        if not hasattr(self, "teacher_infos"):
            self.setup(ctx)
        return {"teachers": self.teacher_infos}
