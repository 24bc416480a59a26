"""The plugin manager: built-ins and entry points, loaded one at a time.

A plugin that fails to import, has a hook with a wrong signature, raises
inside a hook or registers a name that is already taken is recorded with its
error; the rest keep working.  ``DISTILLBENCH_STRICT_PLUGINS=1`` turns any such
error into a hard failure, ``DISTILLBENCH_DISABLE_PLUGINS=a,b`` blocks plugins
by name.
"""
import importlib
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

import pluggy

from distillbench import hookspecs
from distillbench.errors import DistillbenchError
from distillbench.registry import Registry

ENTRY_POINT_GROUP = "distillbench"
BUILTIN_MODULES = ("distillbench.builtin.datasets", "distillbench.builtin.random_method")
REGISTER_HOOKS = {
    "method": "register_methods",
    "dataset": "register_datasets",
    "model": "register_models",
    "evaluator": "register_evaluators",
    "paper_result": "register_paper_results",
}


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    disabled: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


class Plugins:
    """Loaded plugins, and the registries their hooks filled."""

    def __init__(self, entry_points=None):
        self.pm = pluggy.PluginManager("distillbench")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.registries = {kind: Registry(kind) for kind in REGISTER_HOOKS}
        disabled = {n.strip() for n in os.environ.get("DISTILLBENCH_DISABLE_PLUGINS", "").split(",") if n.strip()}
        for module_name in BUILTIN_MODULES:
            self._load(module_name, lambda m=module_name: importlib.import_module(m),
                       version=_own_version(), source="built-in", disabled=disabled)
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        for ep in sorted(eps, key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            self._load(ep.name, ep.load, version=getattr(dist, "version", "?"),
                       source=f"entry point {ep.value} ({getattr(dist, 'name', '?')})", disabled=disabled)
        for kind, hook_name in REGISTER_HOOKS.items():
            self._collect(kind, hook_name)

    def _load(self, name, load, version, source, disabled):
        info = self.info[name] = PluginInfo(name=name, version=version, source=source)
        if name in disabled:
            info.disabled = True
            return
        try:
            module = load()
            self.pm.register(module, name=name)
            self.pm.check_pending()  # hookimpls that name no known hook
        except Exception as exc:  # a broken plugin must not take the CLI down
            if self.pm.has_plugin(name):
                self.pm.unregister(name=name)
            info.errors.append(_describe(exc))
            return
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(self.pm.get_plugin(name)))

    def _collect(self, kind, hook_name):
        registry = self.registries[kind]
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            info = self.info[impl.plugin_name]

            def register(item, _plugin=impl.plugin_name, _info=info):
                try:
                    registry.add(item, _plugin)
                except Exception as exc:
                    _info.errors.append(_describe(exc))
                    return
                _info.registered.setdefault(kind, []).append(item.name)

            try:
                _call(impl, register=register)
            except Exception as exc:
                info.errors.append(f"{hook_name}: {_describe(exc)}")

    def register_commands(self, cli) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                _call(impl, cli=cli)
            except Exception as exc:
                self.info[impl.plugin_name].errors.append(f"register_commands: {_describe(exc)}")

    def errors(self) -> list[tuple[str, str]]:
        return [(info.name, err) for info in self.info.values() for err in info.errors]

    def version_of(self, registry_kind: str, name: str) -> tuple[str, str]:
        """(plugin name, plugin version) of whoever registered ``name``."""
        plugin = self.registries[registry_kind].origin(name)
        return plugin, self.info[plugin].version

    def check(self) -> None:
        """Warn about plugin errors once, or fail under DISTILLBENCH_STRICT_PLUGINS=1."""
        errors = self.errors()
        if not errors:
            return
        strict = os.environ.get("DISTILLBENCH_STRICT_PLUGINS", "") not in ("", "0")
        for name, err in errors:
            if strict:
                raise DistillbenchError(f"plugin '{name}' failed: {err} (DISTILLBENCH_STRICT_PLUGINS is set)")
            print(f"warning: plugin '{name}' failed: {err}; see `distillbench plugins`", file=sys.stderr)


def _call(impl, **kwargs):
    """Call one hookimpl; pluggy lets an impl accept a subset of the spec's arguments."""
    return impl.function(**{arg: kwargs[arg] for arg in impl.argnames})


def _own_version() -> str:
    from distillbench import __version__
    return __version__


@lru_cache(maxsize=1)
def get_plugins() -> Plugins:
    plugins = Plugins()
    plugins.check()
    return plugins


def registry(kind: str) -> Registry:
    return get_plugins().registries[kind]
