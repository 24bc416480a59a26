"""SRe2L, RDED and D4M honour the method contract, on a teacher and a backbone trained for digits in seconds."""
from distillbench.testing import TINY_BACKBONE, TINY_TEACHER, MethodContract


class TestSRe2LContract(MethodContract):
    method = "sre2l"
    prepare = (TINY_TEACHER,)


class TestRDEDContract(MethodContract):
    method = "rded"
    prepare = (TINY_TEACHER,)


class TestD4MContract(MethodContract):
    method = "d4m"
    prepare = (TINY_BACKBONE,)
