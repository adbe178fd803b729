"""The settings-from-environment parsing of exam_app."""

from __future__ import annotations

from pathlib import Path

import pytest

from exam_app import envconf


def test_flags() -> None:
    assert envconf.flag("X", False, {"X": "on"}) is True
    assert envconf.flag("X", True, {"X": "0"}) is False
    assert envconf.flag("X", True, {}) is True
    with pytest.raises(envconf.EnvError, match="X='maybe'"):
        envconf.flag("X", True, {"X": "maybe"})


def test_numbers() -> None:
    assert envconf.integer("N", 1, environ={"N": "4"}) == 4
    assert envconf.seconds("S", 3600.0, {"S": "2.5"}) == 2.5
    with pytest.raises(envconf.EnvError, match="at least 1"):
        envconf.integer("N", 1, minimum=1, environ={"N": "0"})
    with pytest.raises(envconf.EnvError, match="whole number"):
        envconf.integer("N", 1, environ={"N": "two"})
    with pytest.raises(envconf.EnvError, match="more than 0"):
        envconf.seconds("S", 1.0, {"S": "-1"})


def test_choice() -> None:
    assert envconf.choice("P", "prefork", ("prefork", "solo"), {"P": "solo"}) == "solo"
    with pytest.raises(envconf.EnvError, match="expected one of prefork, solo"):
        envconf.choice("P", "prefork", ("prefork", "solo"), {"P": "gevent"})


def test_database_urls() -> None:
    postgres = envconf.database("D", Path("/x"), {"D": "postgres://u:p%40ss@db:5433/exam"})
    assert postgres["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["USER"], postgres["PASSWORD"], postgres["HOST"], postgres["PORT"]) == (
        "u",
        "p@ss",
        "db",
        "5433",
    )
    assert postgres["NAME"] == "exam"
    sqlite = envconf.database("D", Path("/tmp/db.sqlite3"), {})
    assert sqlite["NAME"] == "/tmp/db.sqlite3"
    options = sqlite["OPTIONS"]
    assert isinstance(options, dict) and options["transaction_mode"] == "IMMEDIATE"
    with pytest.raises(envconf.EnvError, match="postgres:// or sqlite:///"):
        envconf.database("D", Path("/x"), {"D": "mysql://x"})


def test_settings_module_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import exam_app.settings as settings

    monkeypatch.setenv("CELERY_BROKER_VISIBILITY_TIMEOUT", "7")
    monkeypatch.setenv("CELERY_TASK_ACKS_LATE", "true")
    reloaded = importlib.reload(settings)
    assert reloaded.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == 7.0
    assert reloaded.CELERY_TASK_ACKS_LATE is True
    assert reloaded.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    monkeypatch.undo()
    importlib.reload(settings)
