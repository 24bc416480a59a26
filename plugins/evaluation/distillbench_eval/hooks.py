"""The evaluation plugin: students, the ``students`` evaluator, ``train-teacher`` and ``protocols``.

Registered through the ``distillbench`` entry-point group like any third-party plugin.
Torch is imported only when work starts, so that CLI start-up stays fast.
"""
from distillbench.api import Evaluator, hookimpl


class StudentsEvaluator(Evaluator):
    name = "students"
    description = "trains students on the set under a named protocol (rded by default); test accuracy over seeds"

    def check(self, request):
        from distillbench_eval.students import check_request
        check_request(request)

    def trials(self, distilled, request):
        from distillbench_eval.students import Session
        self.session = Session(distilled, request)
        return self.session.trials()

    def run_trial(self, trial, ctx):
        return self.session.run(trial, ctx)


@hookimpl
def register_models(register):
    from distillbench_eval.models import MODELS
    for spec in MODELS:
        register(spec)


@hookimpl
def register_evaluators(register):
    register(StudentsEvaluator)


@hookimpl
def register_commands(cli):
    from distillbench_eval.commands import register
    register(cli)
