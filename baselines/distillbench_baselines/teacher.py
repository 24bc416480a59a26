"""Methods that distil against a teacher: ``teacher=ARCH=PATH``, or the cached one for ``teacher_arch``."""
from distillbench.method import Distiller


class TeacherMethod(Distiller):
    """A Distiller whose options carry ``teacher``, ``teacher_arch`` and ``normalization``."""

    def setup(self, ctx) -> None:
        from distillbench import paths
        from distillbench_eval.evaluator import normalizer
        from distillbench_eval.teachers import load_ensemble
        args = [self.options.teacher] if self.options.teacher else []
        self.teacher, self.teacher_infos = load_ensemble(args, self.options.teacher_arch, ctx.spec,
                                                         ctx.train.num_classes, paths.cache_dir(), ctx.device)
        self.normalize = normalizer(ctx.spec, self.options, ctx.device)

    def finalize(self, ctx, folder) -> dict:
        if not hasattr(self, "teacher_infos"):
            self.setup(ctx)
        return {"teachers": self.teacher_infos}
