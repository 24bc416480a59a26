"""The hook specifications of distillbench: the whole plugin contract.

A plugin is a module (exposed through the ``distillbench`` entry-point group)
with functions decorated by ``@distillbench.hookimpl`` and named after the
specs below.  Each ``register_*`` hook receives a ``register`` callback; call
it once per object you provide.  Registered objects carry ``name`` and
``description`` attributes.
"""
import pluggy

hookspec = pluggy.HookspecMarker("distillbench")
hookimpl = pluggy.HookimplMarker("distillbench")


@hookspec
def register_methods(register):
    """Register distillation methods: ``register(MyDistiller)`` with a
    subclass of :class:`distillbench.method.Distiller`."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(DatasetSpec(...))``
    (see :mod:`distillbench.datasets`)."""


@hookspec
def register_models(register):
    """Register student/teacher architectures: ``register(ModelSpec(...))``
    (see :mod:`distillbench.models`)."""


@hookspec
def register_evaluators(register):
    """Register evaluators: ``register(MyEvaluator)`` with a subclass of
    :class:`distillbench.evaluator.Evaluator`."""


@hookspec
def register_commands(cli):
    """Add commands to the ``distillbench`` click group, e.g.
    ``@cli.command() def train_teacher(...)``.  Keep imports of heavy
    libraries inside the command so that start-up stays fast."""


@hookspec
def register_paper_results(register):
    """Register published results: ``register(PaperResult(...))`` (see :mod:`distillbench.paper`), one per
    cell of a paper's table, so that ``compare --paper`` shows them beside what was measured."""
