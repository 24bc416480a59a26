"""The SRe2L family, RDED, D4M and the coresets honour the method contract, on a teacher and a backbone trained
for digits in seconds."""
from distillbench.testing import TINY_BACKBONE, TINY_TEACHER, MethodContract


class TestSRe2LContract(MethodContract):
    method = "sre2l"
    prepare = (TINY_TEACHER,)


class TestCDAContract(MethodContract):
    method = "cda"
    prepare = (TINY_TEACHER,)


class TestDWAContract(MethodContract):
    method = "dwa"
    prepare = (TINY_TEACHER,)


class TestGVBSMContract(MethodContract):
    method = "gvbsm"
    prepare = (TINY_TEACHER,)


class TestEDCContract(MethodContract):
    method = "edc"
    prepare = (TINY_TEACHER,)


class TestRDEDContract(MethodContract):
    method = "rded"
    prepare = (TINY_TEACHER,)


class TestD4MContract(MethodContract):
    method = "d4m"
    prepare = (TINY_BACKBONE,)


class TestHerdingContract(MethodContract):
    method = "herding"
    prepare = (TINY_TEACHER,)
    draws = False


class TestKCenterContract(MethodContract):
    method = "kcenter"
    prepare = (TINY_TEACHER,)


class TestMinimaxContract(MethodContract):
    method = "minimax"
    prepare = (TINY_BACKBONE,)
