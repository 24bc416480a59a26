"""The baselines plugin: the SRe2L family (``sre2l``, ``cda``, ``dwa``, ``gvbsm``, ``edc``), ``rded``, ``d4m``,
``minimax`` and the coresets ``herding`` and ``kcenter``, registered like any third-party method."""
from distillbench.api import hookimpl


@hookimpl
def register_methods(register):
    from distillbench_baselines.cda import CDA
    from distillbench_baselines.coreset import Herding, KCenter
    from distillbench_baselines.d4m import D4M
    from distillbench_baselines.dwa import DWA
    from distillbench_baselines.edc import EDC
    from distillbench_baselines.gvbsm import GVBSM
    from distillbench_baselines.minimax import Minimax
    from distillbench_baselines.rded import RDED
    from distillbench_baselines.sre2l import SRe2L
    for method in (SRe2L, CDA, DWA, GVBSM, EDC, RDED, D4M, Minimax, Herding, KCenter):
        register(method)


@hookimpl
def register_paper_results(register):
    from distillbench_baselines.paper import RESULTS
    for result in RESULTS:
        register(result)
