"""The ``students`` evaluator honours the evaluator contract: a conv3 student, hard labels, a few epochs."""
from distillbench.testing import TINY_TEACHER, EvaluatorContract


class TestStudentsContract(EvaluatorContract):
    evaluator = "students"
    prepare = (TINY_TEACHER,)
    args = ("--protocol", "rded", "--set", "epochs=2", "--set", "eval_every=1")
