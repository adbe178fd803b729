"""The pytest plugin (entry point pytest11 "celery_chaos"): chaos-test your own
tasks from your own test suite, with no change to them.

    @pytest.mark.celery_chaos(app="shop.celery:app", fault="container", at="after_commit")
    def test_charge_survives_a_worker_kill(celery_chaos):
        result = celery_chaos.run("payments.tasks.charge", kwargs={"order_id": "{key}"}, tasks=3)
        assert result.counts.duplicated_work == 0, result.explain()

The marker takes any setting (`celery-rig list` shows them) and `backend`;
its arguments are bound to one typed signature at collection, so a typo is a
collection error naming the test. Backends start once per test session
(and while they are up, CELERY_BROKER_URL and the like are out of the test
process's environment: Celery would read them before the rig's settings). A
run that proves nothing (the fault never landed, the run never settled, it
crashed) fails the test with its reasons: a count is never asserted on
nothing.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import pytest

MARKER = "celery_chaos"


def _signature() -> inspect.Signature:
    from rig.schema import signature
    from rig.settings import Settings

    backend = inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default=None)
    return signature(Settings).replace(
        parameters=[*signature(Settings).parameters.values(), backend]
    )


def marker_values(marker: pytest.Mark, where: str) -> tuple[dict[str, Any], str | None]:
    """The marker's settings, each checked alone, and its backend."""
    from rig.errors import BadInput
    from rig.schema import make
    from rig.settings import Settings

    try:
        bound = _signature().bind(*marker.args, **marker.kwargs).arguments
    except TypeError as error:
        raise BadInput(f"{where}: @pytest.mark.{MARKER}: {error}") from None
    backend = bound.pop("backend", None)
    if backend not in (None, "auto", "docker", "local"):
        raise BadInput(f"{where}: backend={backend!r}: expected auto, docker or local")
    make(Settings, bound, f"{where}: @pytest.mark.{MARKER}", validate=False)
    return bound, backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): settings of the celery_chaos fixture's runs "
        "(app, fault, at, acks, workers, backend, ...; see `celery-rig list`)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from rig.errors import BadInput

    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is not None:
            try:
                marker_values(marker, item.nodeid)
            except BadInput as error:
                raise pytest.UsageError(str(error)) from None


class Sessions:
    """One started backend per backend name, for the whole test session."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._runners: dict[str | None, Any] = {}

    def runner(self, backend: str | None) -> Any:
        from rig.catalog import session

        if backend not in self._runners:
            self._runners[backend] = self._stack.enter_context(session(backend, print))
        return self._runners[backend]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def celery_chaos_sessions() -> Iterator[Sessions]:
    sessions = Sessions()
    try:
        yield sessions
    finally:
        sessions.close()


@dataclass
class ChaosResult:
    verdict: str
    counts: Any  # rig.checker.Counts; its row counts None when no --effects were read
    reasons: list[str]
    replay: str
    result: Any  # rig.runner.Result: settings, history, worker logs

    def explain(self) -> str:
        from rig.explain import explain

        lines = [f"verdict {self.verdict}: " + (", ".join(self.reasons) or "see the counts")]
        counts = self.counts.as_dict()
        lines.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        if counts["duplicate_rows"] is None:
            lines.append("rows not counted: give effects= to count duplicate and missing rows")
        lines += explain(self.result.history)
        return "\n".join([*lines, f"replay: {self.replay}"])


class Chaos:
    """The celery_chaos fixture: runs a task of your app under the marker's settings."""

    def __init__(
        self, sessions: Sessions, values: dict[str, Any], backend: str | None, name: str
    ) -> None:
        self.sessions, self.values, self.backend, self.name = sessions, values, backend, name

    def run(
        self,
        task: str,
        *,
        kwargs: dict[str, Any] | None = None,
        args: list[Any] | None = None,
        tasks: int = 1,
        effects: str | None = None,
        **settings: Any,
    ) -> ChaosResult:
        from rig.catalog import replay_command
        from rig.checker import rows_counted
        from rig.errors import RigError
        from rig.settings import make_settings
        from rig.target import pin_project_dir

        values = {**self.values, **settings, "task": task, "tasks": tasks}
        for name, value in (("kwargs", kwargs), ("args", args)):
            if value is not None:
                values[name] = json.dumps(value)
        if effects is not None:
            values["effects"] = effects
        try:
            chosen = make_settings(**pin_project_dir(values))
            runner = self.sessions.runner(self.backend)
        except RigError as error:
            pytest.fail(f"{self.name}: {error}", pytrace=False)
        result = runner.run(self.name, chosen, None)
        replay = replay_command(self.name, chosen, runner.backend.info.name, catalog=False)
        outcome = result.outcome
        counts = outcome.counts
        if not rows_counted(result.history):
            # No effects were read: an assertion on rows must not pass on nothing.
            counts = replace(counts, duplicate_rows=None, missing_rows=None)
        chaos = ChaosResult(outcome.verdict, counts, outcome.reasons, replay, result)
        if outcome.verdict in ("unknown", "error"):
            pytest.fail(f"the run proves nothing:\n{chaos.explain()}", pytrace=False)
        return chaos


@pytest.fixture
def celery_chaos(request: pytest.FixtureRequest, celery_chaos_sessions: Sessions) -> Chaos:
    marker = request.node.get_closest_marker(MARKER)
    values: dict[str, Any] = {}
    backend: str | None = None
    if marker is not None:
        values, backend = marker_values(marker, request.node.nodeid)
    return Chaos(celery_chaos_sessions, values, backend, request.node.name)
