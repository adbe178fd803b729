"""Typed readers for settings that come from the environment.

Every setting a chaos scenario varies is read here, so a bad value fails at
start-up with the variable's name instead of being silently replaced.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class EnvError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return None if value is None or value.strip() == "" else value.strip()


def flag(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise EnvError(f"{name}={value!r}: expected one of {sorted(TRUE_WORDS | FALSE_WORDS)}")


def integer(
    name: str, default: int, minimum: int = 0, environ: Mapping[str, str] | None = None
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise EnvError(f"{name}={value!r}: expected a whole number") from None
    if number < minimum:
        raise EnvError(f"{name}={number}: must be at least {minimum}")
    return number


def seconds(
    name: str,
    default: float,
    environ: Mapping[str, str] | None = None,
    allow_zero: bool = False,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise EnvError(f"{name}={value!r}: expected a number of seconds") from None
    if number < 0 or (number == 0 and not allow_zero):
        raise EnvError(f"{name}={number}: must be more than 0 seconds")
    return number


def choice(
    name: str, default: str, allowed: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    if value not in allowed:
        raise EnvError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def text(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def sqlite_path(url: str) -> str:
    """sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy writes them."""
    return unquote(urlsplit(url).path)[1:]


def database(
    name: str, default_sqlite: Path, environ: Mapping[str, str] | None = None
) -> dict[str, object]:
    """A Django DATABASES entry from a URL: postgres://user:pass@host:port/db or sqlite:///path."""
    url = _raw(name, environ)
    if url is None:
        url = f"sqlite:///{default_sqlite}"
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # Several worker processes share one file: IMMEDIATE transactions take
        # the write lock up front and wait for it (timeout), where a deferred
        # one would fail with "database is locked" when it starts to write.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path(url),
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "localhost",
            "PORT": str(parts.port or 5432),
        }
    raise EnvError(f"{name}={url!r}: expected a postgres:// or sqlite:/// URL")
