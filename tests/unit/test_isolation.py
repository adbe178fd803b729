"""rig.isolation on the pinned Celery: every way a project names its broker and
result backend is taken over, and what cannot be is refused in one line.
(tests/test_real_project.py runs the same on each supported Celery, end to end.)"""

from __future__ import annotations

import pytest
from celery import Celery

from rig.isolation import Refused, check_celery, infrastructure, take_over

OURS = "redis://127.0.0.1:1/3"
THEIRS = "redis://127.0.0.1:6399/0"


class Namespaced:
    CELERY_BROKER_URL = THEIRS
    CELERY_BROKER_READ_URL = THEIRS
    CELERY_BROKER_WRITE_URL = THEIRS
    CELERY_RESULT_BACKEND = THEIRS
    CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": "required"}


class OldNames:
    BROKER_URL = THEIRS
    CELERY_RESULT_BACKEND = THEIRS


def app_from(config: type, namespace: str | None) -> Celery:
    app = Celery("project")
    app.config_from_object(config, namespace=namespace)
    return app


@pytest.mark.parametrize(("config", "namespace"), [(Namespaced, "CELERY"), (OldNames, None)])
def test_the_projects_names_are_taken_over(
    config: type, namespace: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", THEIRS)  # a developer's shell
    app = app_from(config, namespace)
    take_over(app, infrastructure(OURS, None))
    check_celery(app, OURS)  # raises if anything is still theirs
    assert app.conf.broker_url == OURS
    assert app.connection_for_read().as_uri() == app.connection_for_write().as_uri()
    assert "6399" not in app.connection_for_write().as_uri()
    assert type(app.backend).__name__ == "DisabledBackend"


def test_settings_set_in_code_after_the_config_are_taken_over_too() -> None:
    app = app_from(Namespaced, "CELERY")
    app.conf.broker_url = THEIRS
    app.conf.result_backend = THEIRS
    take_over(app, infrastructure(OURS, None))
    check_celery(app, OURS)


def test_a_backend_built_before_the_rig_came_is_refused() -> None:
    app = Celery("project", broker=THEIRS, backend=THEIRS)
    assert app.backend is not None  # built and cached, as an app module may do
    take_over(app, infrastructure(OURS, None))
    with pytest.raises(Refused) as refused:
        check_celery(app, OURS)
    message = str(refused.value)
    assert "\n" not in message and "result backend is redis://127.0.0.1:6399/0" in message


def test_a_broker_left_standing_is_refused_naming_it() -> None:
    app = app_from(Namespaced, "CELERY")  # not taken over
    with pytest.raises(Refused) as refused:
        check_celery(app, OURS)
    assert "broker_url redis://127.0.0.1:6399/0" in str(refused.value)


RESULTS = "redis://127.0.0.1:1/4"  # the rig's own result store (a run with result_backend=redis)


def test_the_rigs_own_result_backend_takes_the_projects_place() -> None:
    app = app_from(Namespaced, "CELERY")
    take_over(app, infrastructure(OURS, RESULTS))
    check_celery(app, OURS, RESULTS)
    assert type(app.backend).__name__ == "RedisBackend"
    assert app.backend.url is not None and "6399" not in app.backend.url


def test_with_the_rigs_result_backend_one_built_before_is_still_refused() -> None:
    app = Celery("project", broker=THEIRS, backend=THEIRS)
    assert app.backend is not None
    take_over(app, infrastructure(OURS, RESULTS))
    with pytest.raises(Refused, match="result backend is redis://127.0.0.1:6399/0"):
        check_celery(app, OURS, RESULTS)
