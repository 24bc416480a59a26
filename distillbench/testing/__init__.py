"""Testing distillbench plugins: the conformance suites and the helpers they run on.

``MethodContract`` and ``EvaluatorContract`` are the suites every built-in method and evaluator passes;
subclass them in a plugin's tests (see the README's "Writing a plugin")."""
from distillbench.testing.contracts import EvaluatorContract, MethodContract
from distillbench.testing.helpers import (HANG_SECONDS, TINY_BACKBONE, TINY_TEACHER, communicate, copied_into_hub_cache,
                                          finished_sets, hang, hub_snapshot, install_plugin, invoke, killed_at_call,
                                          png_bytes_of, run_command, run_subprocess, start, torchrun, wait_for)

__all__ = ["EvaluatorContract", "MethodContract", "HANG_SECONDS", "TINY_BACKBONE", "TINY_TEACHER", "communicate",
           "copied_into_hub_cache", "finished_sets", "hang", "hub_snapshot", "install_plugin", "invoke",
           "killed_at_call", "png_bytes_of", "run_command", "run_subprocess", "start", "torchrun", "wait_for"]
