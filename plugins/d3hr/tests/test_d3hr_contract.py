"""D3HR honours the method contract, on a tiny backbone trained for digits in seconds."""
from distillbench.testing import TINY_BACKBONE, MethodContract


class TestD3HRContract(MethodContract):
    method = "d3hr"
    prepare = (TINY_BACKBONE,)
