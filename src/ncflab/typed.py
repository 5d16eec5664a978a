"""Typed fields: a value checked against a dataclass field's declared type and range.

Every value a user gives (a config file, ``--set key=value``, a keyword in Python) passes through
:func:`check_value` before anything is read or trained, so ``refit=False`` typed on a command
line is the boolean false (not the truthy string "False"), ``factors=1.5`` is an error naming
the key, and ``lr=0`` or ``lr=inf`` is refused where the field says ``lr > 0``.

A field declares its range once, in its metadata (:func:`bounds`); model hyperparameters that
share a name across models (``lr``, ``reg``, ``factors``, ...) declare it once for all of them
in ``ncflab.models.base.COMMON_BOUNDS``. Floats must be finite unless a range says otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, Literal, Union

__all__ = ["Bounds", "ConfigError", "bounds", "check_dataclass", "check_value", "field_types"]


class ConfigError(ValueError):
    """A configuration value of the wrong type or outside its range; the message names the key,
    what was expected and the value given."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """A numeric range (any of ``gt``, ``ge``, ``lt``, ``le``) and/or a set of ``choices``."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple | None = None
    finite: bool = True

    def describe(self) -> str:
        limits = ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
        parts = [f"{op} {v:g}" for op, v in limits if v is not None]
        return " and ".join(parts)

    def check(self, key: str, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{key} must be one of {list(self.choices)}, got {value!r}")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        if isinstance(value, float) and self.finite and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        ok = (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )
        if not ok:
            raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")


def bounds(**kw: Any) -> dict[str, Bounds]:
    """Field metadata declaring a range: ``field(default=5, metadata=bounds(ge=0))``."""
    return {"bounds": Bounds(**kw)}


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields → their resolved type annotations (cached per class)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def check_value(key: str, value: Any, annotation: Any, rng: Bounds | None = None) -> Any:
    """``value`` checked against ``annotation`` (and ``rng``); returns it in the declared type.

    The only conversions are those that lose nothing: an int where a float is declared, and
    the words true/false (any case) where a bool is. Anything else (1.5 or 1.0 for an int, the
    string "abc" for a number, "maybe" for a bool) raises ``ConfigError`` naming ``key``, the
    expected type and the value.
    """
    value = _typed(key, value, annotation)
    if rng is not None and value is not None:
        rng.check(key, value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    return value


def check_dataclass(obj: Any, extra: dict[str, Bounds] | None = None, prefix: str = "") -> None:
    """Check (and convert in place) every field of the dataclass instance ``obj``; ``extra``
    gives ranges by field name for fields whose metadata declares none."""
    types_ = field_types(type(obj))
    for f in dataclasses.fields(obj):
        if not f.init or f.metadata.get("runtime"):
            continue
        rng = f.metadata.get("bounds") or (extra or {}).get(f.name)
        value = check_value(prefix + f.name, getattr(obj, f.name), types_[f.name], rng)
        object.__setattr__(obj, f.name, value)


def _name(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if _is_union(annotation):  # None is "leave it unset", not something to type
        return " or ".join(_name(a) for a in typing.get_args(annotation) if a is not type(None))
    origin = typing.get_origin(annotation)
    if origin is not None:
        args = ", ".join(_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', origin)}[{args}]"
    words = {
        bool: "a boolean (true or false)",
        int: "an integer",
        float: "a number",
        str: "a string",
    }
    return words.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _fail(key: str, annotation: Any, value: Any) -> ConfigError:
    return ConfigError(f"{key} must be {_name(annotation)}, got {value!r}")


def _typed(key: str, value: Any, annotation: Any) -> Any:  # noqa: C901 - one branch per kind
    if annotation is Any:
        return value
    if _is_union(annotation):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _typed(key, value, option)
            except ConfigError:
                continue
        raise _fail(key, annotation, value)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise _fail(key, annotation, value)
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _fail(key, annotation, value)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(key, annotation, value)
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _fail(key, annotation, value)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _fail(key, annotation, value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _fail(key, annotation, value)
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis] or [Any]
        items = [_typed(f"{key}[{i}]", v, args[min(i, len(args) - 1)]) for i, v in enumerate(value)]
        return origin(items)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise _fail(key, annotation, value)
        return value
    if dataclasses.is_dataclass(annotation):
        return value  # a nested table: checked by its own check_dataclass
    return value
