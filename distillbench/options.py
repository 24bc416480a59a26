"""Typed options from dataclass fields: parse ``key=value`` strings, reject unknown keys.

Each method (and each evaluation protocol) declares its options as a dataclass
with defaults; the field's annotation says how a string value is converted:
``int``, ``float``, ``bool``, ``str``, ``Literal[...]`` (a closed set of
choices) or ``Optional[...]`` of one of those (``none`` gives None).  A field
declared with :func:`option` carries its one-line help, which
``distillbench methods NAME`` shows.
"""
import dataclasses
import math
import typing

from distillbench.errors import UsageError, choices_hint

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_pairs(pairs, what: str = "--option") -> dict[str, str]:
    """Turn ``["a=1", "b=x"]`` into a dict, rejecting malformed items."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"malformed {what} '{pair}': expected key=value, e.g. {what} m=1000")
        parsed[key.strip()] = value.strip()
    return parsed


def int_list(text: str, flag: str, minimum: int, example: str) -> list[int]:
    """``A-B`` (inclusive) or ``A,B,...``: the integers in order, each at least ``minimum``; a usage error
    naming ``flag`` otherwise."""
    try:
        first, dash, last = text.partition("-")
        values = list(range(int(first), int(last) + 1)) if dash else [int(k) for k in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < minimum:
        raise UsageError(f"{flag} {text}: expected a range A-B or a list A,B,... of integers >= {minimum}, "
                         f"e.g. {flag} {example}")
    return values


def _convert(value: str, annotation, key: str):
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        literal = typing.get_origin(inner[0]) is typing.Literal and value in typing.get_args(inner[0])
        if value.lower() == "none" and not literal:  # mix=none is the choice "none", not "left to the rules"
            return None
        return _convert(value, inner[0], key)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise UsageError(f"option {key}={value} is not valid; choose one of: {choices_hint(choices)}")
        return value
    if annotation is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise UsageError(f"option {key}={value} is not a boolean; use true or false")
    if annotation in (int, float):
        try:
            number = annotation(value)
        except ValueError:
            raise UsageError(f"option {key}={value} is not a valid {annotation.__name__}") from None
        if not math.isfinite(number):
            raise UsageError(f"option {key}={value} is not a finite number")
        return number
    return value


def build(options_cls, overrides: dict, owner: str):
    """An instance of the dataclass ``options_cls`` with string ``overrides`` applied;
    ``owner`` names whose options these are in error messages."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        valid = choices_hint(fields, "(none: it takes no options)")
        raise UsageError(f"unknown option '{unknown[0]}' for {owner}; valid keys: {valid}")
    hints = typing.get_type_hints(options_cls)
    values = {key: _convert(raw, hints[key], key) for key, raw in overrides.items()}
    return options_cls(**values)


def as_dict(options) -> dict:
    return dataclasses.asdict(options)


def option(default, help: str):
    """A dataclass field with its one-line help: ``iterations: int = option(1000, "recovery steps")``."""
    return dataclasses.field(default=default, metadata={"help": help})


def describe(options_cls) -> list[dict]:
    """name, type, default and help of every option, in declaration order."""
    hints = typing.get_type_hints(options_cls)
    return [{"name": f.name, "type": type_name(hints[f.name]), "default": f.default,
             "help": f.metadata.get("help", "")} for f in dataclasses.fields(options_cls)]


def type_name(annotation) -> str:
    """How a value is written: ``int``, ``ddim|ddpm``, ``int or none``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return f"{type_name(inner[0])} or none"
    if origin is typing.Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    return getattr(annotation, "__name__", str(annotation))
