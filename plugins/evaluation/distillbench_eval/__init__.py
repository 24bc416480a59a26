"""distillbench's shared evaluator: teachers, students and the soft-label protocols."""
__version__ = "0.1.0"
