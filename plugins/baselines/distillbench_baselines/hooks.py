"""The baselines plugin: ``sre2l``, ``rded``, ``d4m`` and the coresets ``herding`` and ``kcenter``, registered like
any third-party method."""
from distillbench.api import hookimpl


@hookimpl
def register_methods(register):
    from distillbench_baselines.coreset import Herding, KCenter
    from distillbench_baselines.d4m import D4M
    from distillbench_baselines.rded import RDED
    from distillbench_baselines.sre2l import SRe2L
    for method in (SRe2L, RDED, D4M, Herding, KCenter):
        register(method)


@hookimpl
def register_paper_results(register):
    from distillbench_baselines.paper import RESULTS
    for result in RESULTS:
        register(result)
