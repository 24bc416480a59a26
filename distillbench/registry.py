"""One generic named registry, used for methods, datasets, models and evaluators."""
from dataclasses import dataclass
from typing import Any

from distillbench.errors import UsageError, choices_hint


class DuplicateName(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    item: Any
    plugin: str


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, item, plugin: str) -> None:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered {self.kind} needs a non-empty string attribute 'name', got {item!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            raise DuplicateName(f"{self.kind} '{name}' is already registered by plugin '{first}'; "
                                f"the duplicate from plugin '{plugin}' was ignored")
        self._entries[name] = Entry(item, plugin)

    def get(self, name: str):
        """The item named ``name``; for ``PREFIX:REST``, the member that the family registered under ``PREFIX:``
        names (a family has a ``member(name)`` method, e.g. the ``hf:`` datasets)."""
        if name in self._entries:
            return self._entries[name].item
        family = self._entries.get(name.partition(":")[0] + ":") if ":" in name else None
        if family is not None:
            return family.item.member(name)
        raise UsageError(f"unknown {self.kind} '{name}'; choose one of: {choices_hint(self._entries)}")

    def origin(self, name: str) -> str:
        return self._entries[name].plugin

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list:
        return [self._entries[n].item for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries
