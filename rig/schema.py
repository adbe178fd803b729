"""Declare a setting once; derive its flag, its file key, its marker
argument and its validation from that one declaration.

A settings class is a frozen dataclass whose fields are made with
`setting(default, help)`. The field's annotation is its type (a Literal is
its list of allowed values), the default is the default, and the help is
the one phrase `--help` shows. From the class:

- `make(cls, values, where)` validates a mapping (a scenario file's table,
  CLI flags, a pytest marker's keyword arguments) into an instance; an
  unknown key, a wrong type, a value out of range is a BadInput naming
  `where`;
- `signature(cls)` is the keyword-only signature a marker is bound
  against, as pytest-django binds `django_db`;
- `add_flags(parser, cls)` adds one `--flag` per field, and
  `given_flags(args, cls)` reads back only the ones the user gave;
- `as_flags(instance, base)` is the flag list that recreates an instance
  from the defaults (or `base`): the replay command of a run.
"""

from __future__ import annotations

import argparse
import inspect
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, field, fields
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from rig.errors import BadInput

T = TypeVar("T")


def setting(
    default: Any,
    help: str,  # noqa: A002
    minimum: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field that carries its one-line help, its lower bound, and its
    allowed values where a registry lists them (a Literal written in the
    annotation lists them otherwise)."""
    metadata = {"help": help, "minimum": minimum, "choices": choices}
    return field(default=default, metadata=metadata)


@cache
def _types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _kind(cls: type, name: str) -> tuple[Any, bool]:
    """A field's type without `| None`, and whether None is allowed (None: "leave
    it to the app's own setting")."""
    kind = _types(cls)[name]
    if get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind):
        (inner,) = (arg for arg in get_args(kind) if arg is not type(None))
        return inner, True
    return kind, False


def choices(cls: type, name: str) -> tuple[str, ...] | None:
    listed = _fields(cls)[name].metadata.get("choices")
    if listed is not None:
        return tuple(listed)
    kind, _ = _kind(cls, name)
    return get_args(kind) if get_origin(kind) is Literal else None


@cache
def _fields(cls: type) -> dict[str, Field[Any]]:
    return {item.name: item for item in fields(cls)}


def _is_texts(kind: Any) -> bool:
    return get_origin(kind) is tuple and get_args(kind) == (str, ...)


def _help(item: Field[Any]) -> str:
    return str(item.metadata.get("help", ""))


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check(cls: type, item: Field[Any], value: Any) -> Any:
    """The value, converted where harmless (an int for a float); BadInput if it cannot be."""
    name, (kind, optional) = item.name, _kind(cls, item.name)
    if value is None and optional:
        return None
    allowed = choices(cls, name)
    if allowed is not None:
        if value not in allowed:
            raise BadInput(f"{name}={value!r}: expected one of {', '.join(allowed)}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise BadInput(f"{name}={value!r}: expected true or false")
        return value
    if kind in (int, float):
        numeric = (int, float) if kind is float else (int,)
        if isinstance(value, bool) or not isinstance(value, numeric):
            expected = "a number" if kind is float else "a whole number"
            raise BadInput(f"{name}={value!r}: expected {expected}")
        minimum = item.metadata.get("minimum")
        if minimum is not None and value < minimum:
            raise BadInput(f"{name}={value!r}: must be at least {minimum}")
        return kind(value)
    if kind is str:
        if not isinstance(value, str):
            raise BadInput(f"{name}={value!r}: expected text")
        return value
    if _is_texts(kind):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise BadInput(f"{name}={value!r}: expected a list of text")
        return tuple(value)
    raise TypeError(f"{cls.__name__}.{name}: unsupported setting type {kind!r}")


def make(cls: type[T], values: dict[str, Any], where: str = "", validate: bool = True) -> T:
    """An instance of cls from a mapping, every key and value checked; with
    validate=False, each value alone (the combinations are checked later)."""
    prefix = f"{where}: " if where else ""
    known = {item.name: item for item in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadInput(
            f"{prefix}unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        checked = {name: _check(cls, known[name], value) for name, value in values.items()}
        instance = cls(**checked)
        if validate and hasattr(instance, "validate"):
            instance.validate()
    except BadInput as error:
        raise BadInput(f"{prefix}{error}") from None
    return instance


def signature(cls: type) -> inspect.Signature:
    """Keyword-only parameters named, typed and defaulted as the fields are."""
    return inspect.Signature(
        [
            inspect.Parameter(
                item.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=item.default,
                annotation=_types(cls)[item.name],
            )
            for item in fields(cls)
        ]
    )


def bind(cls: type[T], args: tuple[Any, ...], kwargs: Mapping[str, Any], where: str) -> T:
    """Bind a marker's arguments against the signature, then validate them."""
    try:
        bound = signature(cls).bind(*args, **kwargs)
    except TypeError as error:
        raise BadInput(f"{where}: {error}") from None
    return make(cls, dict(bound.arguments), where)


def add_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One flag per field; every default is None, so only given flags override."""
    group = parser.add_argument_group(title)
    for item in fields(cls):
        kind, _ = _kind(cls, item.name)
        # A help that names its real default (the current directory) keeps it.
        named = "(default:" in _help(item)
        default = "" if named or item.default is MISSING else f" (default: {_shown(item.default)})"
        options: dict[str, Any] = {"default": None, "help": _help(item) + default}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif choices(cls, item.name) is not None:
            options["choices"] = choices(cls, item.name)
        elif kind is str:
            options["metavar"] = "TEXT"
        elif _is_texts(kind):
            options |= {"action": "append", "metavar": "TEXT"}
            options["help"] += "; repeatable"
        else:
            options["type"] = kind
            options["metavar"] = "S" if kind is float and "seconds" in _help(item) else "N"
        group.add_argument(flag_name(item.name), **options)


def given_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {
        item.name: getattr(args, item.name)
        for item in fields(cls)
        if getattr(args, item.name, None) is not None
    }


def _shown(value: Any) -> str:
    if value is None:
        return "the app's own"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ("", ()):
        return "none"
    return str(value)


def as_flags(instance: Any, base: Any = None) -> list[str]:
    """The flags that recreate the instance from `base` (default: the class's
    defaults): only the fields whose value differs, so a replay reads as the
    cell it is."""
    base = base if base is not None else type(instance)()
    flags = []
    for item in fields(instance):
        value = getattr(instance, item.name)
        # None (the app's own) and empty are what a flag left out gives.
        if value == getattr(base, item.name) or value is None or value in ("", ()):
            continue
        if isinstance(value, tuple):
            flags += [part for text in value for part in (flag_name(item.name), text)]
        elif isinstance(value, bool):
            flags.append(flag_name(item.name) if value else "--no-" + flag_name(item.name)[2:])
        else:
            flags += [flag_name(item.name), f"{value:g}" if isinstance(value, float) else value]
    return [str(part) for part in flags]


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, help) per field, for `list` and the docs."""
    return [(item.name, _shown(item.default), _help(item)) for item in fields(cls)]
