"""The rig's processes use only the rig's infrastructure: forced, then checked.

Every process that loads a user's app (a worker, the probe, the effects) goes
through rig.agent, which calls `take_over` once the app is imported and
`check_celery` (and, with Django, `check_django`) before anything connects.

Why forcing needs more than `app.conf.update(broker_url=...)`: on Celery 5.4
to 5.6 a namespaced app (`config_from_object(..., namespace="CELERY")`)
looks a setting up as ("CELERY_BROKER_URL", "broker_url"), each through every
source in turn (celery/utils/collections.py ConfigurationView._to_keys and
__getitem__), so the project's CELERY_BROKER_URL wins over an update made
under the new name; 5.7 searches the sources first. And `result_backend`
falls back to the old name CELERY_RESULT_BACKEND when it is None
(celery/app/utils.py Settings.result_backend). So every name a setting can
be found under is set. The environment's CELERY_BROKER_URL and the like win
over any setting in every version (Settings.broker_url reads os.environ
first): they are removed.

The check reads the effective values (the properties Celery itself uses,
the connections it would open, a backend or pool the app module may have
built as it loaded) and refuses with one line naming what the project
pointed at. Light on purpose: it runs in every worker.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from celery import Celery
from kombu import Connection

# Celery reads these from the environment before any setting (celery.app.utils
# Settings.broker_url and siblings).
CELERY_ENVIRONMENT = (
    "CELERY_BROKER_URL",
    "CELERY_BROKER_READ_URL",
    "CELERY_BROKER_WRITE_URL",
    "CELERY_RESULT_BACKEND",
)


class Refused(SystemExit):
    """The process would use something of the project's: it stops before connecting."""

    def __init__(self, what: str) -> None:
        super().__init__(f"refusing to run: {what}; the rig uses only its own services")


def infrastructure(broker_url: str, results_url: str | None) -> dict[str, Any]:
    """The settings that name infrastructure, as the rig's processes must have them."""
    return {
        "broker_url": broker_url,
        "broker_read_url": None,
        "broker_write_url": None,
        "broker_use_ssl": None,
        "result_backend": results_url,  # the rig's own result store, or none; never the project's
    }


def take_over(app: Celery, settings: dict[str, Any]) -> None:
    """Give the app these settings under every name Celery may look them up by."""
    for name in CELERY_ENVIRONMENT:
        os.environ.pop(name, None)
    conf = app.conf
    conf.finalize()  # the project's configuration is read now, not at first use
    forced: dict[str, Any] = {}
    for key, value in settings.items():
        forced[key] = value
        forced[f"CELERY_{key.upper()}"] = value  # the old name (CELERY_RESULT_BACKEND)
        if app.namespace:
            forced[f"{app.namespace}_{key}".upper()] = value  # the namespaced name
    conf.update(forced)


def check_celery(app: Celery, broker_url: str, results_url: str | None = None) -> None:
    """Refuse unless the app's effective broker is the rig's, and its result backend
    is the rig's (results_url) or none."""
    conf = app.conf
    ours = _uri(broker_url)
    for name in ("broker_url", "broker_read_url", "broker_write_url"):
        value = getattr(conf, name)
        if value is not None and _uri(value) != ours:
            raise Refused(f"the project's {name} {_safe(value)} stands for the rig's broker")
    for role, connection in (
        ("writes", app.connection_for_write()),
        ("reads", app.connection_for_read()),
    ):
        if connection.as_uri() != ours:
            raise Refused(f"the app {role} through {_safe(connection.as_uri())}, not the rig's")
    if conf.broker_use_ssl:
        raise Refused("the project's broker_use_ssl would apply to the rig's broker")
    pool = getattr(app, "_pool", None)  # built as the app module loaded, before the rig's turn
    if pool is not None and pool.connection is not None and pool.connection.as_uri() != ours:
        raise Refused(f"the app's connection pool points at {_safe(pool.connection.as_uri())}")
    _check_results(app, results_url)


def _check_results(app: Celery, results_url: str | None) -> None:
    conf = app.conf
    if conf.result_backend != results_url:
        raise Refused(f"the project's result backend {_safe(conf.result_backend)} stayed set")
    backend = app.backend
    if results_url is None and type(backend).__name__ == "DisabledBackend":
        return
    url = str(getattr(backend, "url", None) or type(backend).__name__)
    if results_url is None or _uri(url) != _uri(results_url):
        raise Refused(f"the app's result backend is {_safe(url)}")


def django_database(url: str) -> dict[str, Any]:
    """The Django database a rig URL names (what rig.project_settings gives every alias)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # Several worker processes share one file: IMMEDIATE transactions wait for
        # the write lock where deferred ones fail with "database is locked".
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path)[1:],
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "localhost",
        "PORT": str(parts.port or 5432),
    }


IDENTITY = ("ENGINE", "NAME", "HOST", "PORT")  # what says which server and database


def check_django(database_url: str) -> None:
    """Refuse unless every database alias is the rig's, the caches are in memory
    and mail goes nowhere (what rig.project_settings gives)."""
    from django.conf import settings

    want = django_database(database_url)
    for alias, database in settings.DATABASES.items():
        if any(str(database.get(key, "")) != str(want.get(key, "")) for key in IDENTITY):
            where = f"{database.get('HOST')}:{database.get('PORT')}" if database.get("HOST") else ""
            raise Refused(f"database {alias!r} points at {database.get('NAME')!r} {where}".strip())
    for alias, cache in settings.CACHES.items():
        if cache.get("BACKEND") != LOCAL_CACHE:
            raise Refused(f"cache {alias!r} uses {cache.get('BACKEND')} at {cache.get('LOCATION')}")
    if settings.EMAIL_BACKEND != LOCAL_MAIL:
        raise Refused(f"mail goes through {settings.EMAIL_BACKEND}")


LOCAL_CACHE = "django.core.cache.backends.locmem.LocMemCache"
LOCAL_MAIL = "rig.mail.EmailBackend"  # Django's in-memory backend, counted per execution


def _uri(url: str) -> str:
    return Connection(url).as_uri()  # normalised, the password masked


def _safe(value: Any) -> str:
    """A URL without its password, for an error line."""
    parts = urlsplit(str(value))
    if not parts.password:
        return str(value)
    netloc = parts.netloc.replace(f":{parts.password}@", ":**@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
