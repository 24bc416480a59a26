"""The shape of the code: no import cycle anywhere, and plugins that use only the public API.

Every import counts, also the ones inside functions (they run later, but a cycle through them is still a
tangle to read).  Built-in plugins may import ``distillbench.api``, their own package, and libraries."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"distillbench": REPO / "distillbench",
            **{init.parent.name: init.parent for init in sorted(REPO.glob("plugins/*/distillbench_*/__init__.py"))}}


def module_name(path: Path, package: str) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    return ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def modules() -> dict[str, Path]:
    return {module_name(path, package): path for package, folder in PACKAGES.items()
            for path in sorted(folder.rglob("*.py"))}


def imports(path: Path, known: dict) -> set[str]:
    """The project's modules that ``path`` imports (``from package import module`` resolved to the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in known)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def cycle(edges: dict) -> list:
    """One import cycle as a list of modules, or [] when there is none."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_tree_has_every_package():
    assert set(PACKAGES) == {"distillbench", "distillbench_d3hr", "distillbench_eval", "distillbench_baselines"}
    assert "distillbench.api" in graph() and "distillbench_d3hr.method" in graph()


def test_no_import_cycle():
    assert cycle(graph()) == []


def test_a_cycle_is_found():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "distillbench"])
def test_plugins_import_only_the_api_and_their_own_package(package):
    outside = {f"{module} imports {target}" for module, targets in graph().items() if module.startswith(package + ".")
               for target in targets if not (target.startswith(package) or target == "distillbench.api")}
    assert outside == set()
