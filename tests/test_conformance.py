"""The built-in ``random`` method honours the method contract (each plugin's tests run it for its own)."""
from distillbench.testing import MethodContract


class TestRandomContract(MethodContract):
    method = "random"
