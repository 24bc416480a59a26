"""The evaluation plugin: students, the ``students`` evaluator, ``train-teacher`` and ``protocols``.

Registered through the ``distillbench`` entry-point group like any third-party plugin.
Torch is imported only when work starts, so that CLI start-up stays fast.
"""
from distillbench import hookimpl
from distillbench.evaluator import Evaluator


class StudentsEvaluator(Evaluator):
    name = "students"
    description = "trains students on the set under a named protocol (rded by default); test accuracy over seeds"

    def check(self, request):
        from distillbench_eval.evaluator import check_request
        check_request(request)

    def evaluate(self, distilled, request, on_result):
        from distillbench_eval.evaluator import evaluate_students
        return evaluate_students(distilled, request, on_result)


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
    from distillbench_eval.teacher_command import register
    register(cli)
