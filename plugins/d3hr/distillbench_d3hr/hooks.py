"""The D3HR plugin: the ``d3hr`` method and the ``distillbench d3hr`` commands.

Registered through the ``distillbench`` entry-point group, exactly as a third-party plugin would be.
"""
from distillbench.api import hookimpl


@hookimpl
def register_methods(register):
    from distillbench_d3hr.method import D3HR
    register(D3HR)


@hookimpl
def register_commands(cli):
    from distillbench_d3hr.commands import register
    register(cli)


@hookimpl
def register_paper_results(register):
    from distillbench_d3hr.paper import RESULTS
    for result in RESULTS:
        register(result)
