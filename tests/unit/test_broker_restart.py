"""The broker restart's and the broker outage's faults: the broker stays down
until every worker has been refused a reconnection (so kombu's restore of the
held messages meets it away), and a restart or an outage during which one
never was did not land."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from rig.backends.base import ALONE_NODE, Backend, Exit
from rig.control import CheckpointReport, Control
from rig.faults import FaultContext, FaultRecord, broker_outage, broker_restart
from rig.settings import Settings

REPORT = CheckpointReport("t1", 1, "celery@w1-1", 42, "task_start", reported_at=100.0)


class Broker:
    """Restarts at once, recording what happened while it was down."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None], node: str
    ) -> Exit | None:
        assert node == ALONE_NODE, "a broker stop goes to the node such runs have alone"
        self.log.append("stopped")
        while_down()
        self.log.append("started")
        return Exit(at=101.0, detail="redis-server saved, restarted")


class Ledger:
    """The held execution is let go and has ended."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def release(self, report: CheckpointReport) -> None:
        self.log.append("released")

    def ledger(self) -> list[dict[str, Any]]:
        return [{"task_id": "t1", "attempt": 1, "ended_at": 100.5}]


def land(
    fault: Any, settings: Settings, refused: bool, report: CheckpointReport = REPORT
) -> tuple[FaultRecord, list[str]]:
    log: list[str] = []
    counted = {"w1-1": 2, "w2-1": 0}

    def not_refused_since(before: dict[str, int], timeout_s: float) -> str:
        assert before == counted  # counted before the broker stopped
        log.append("refused" if refused else "never refused")
        return "" if refused else "w2-1"

    ctx = FaultContext(
        "f1",
        cast(Backend, Broker(log)),
        cast(Control, Ledger(log)),
        settings,
        report,
        park_s=20.0,
        refusals=lambda: dict(counted),
        not_refused_since=not_refused_since,
    )
    return fault.start(ctx), log


def restart(refused: bool) -> tuple[FaultRecord, list[str]]:
    settings = Settings(fault="broker-restart", broker_persistence=True)
    return land(broker_restart, settings, refused)


def test_the_broker_stays_down_until_every_worker_was_refused() -> None:
    fault, log = restart(refused=True)
    assert log == ["stopped", "released", "refused", "started"]
    assert fault.landed


def test_a_restart_no_worker_saw_did_not_land() -> None:
    fault, log = restart(refused=False)
    assert log == ["stopped", "released", "never refused", "started"]
    assert not fault.landed
    assert fault.detail.endswith("w2-1: not refused a reconnection within 15 s of the stop")


def test_an_outage_lasts_until_every_worker_was_refused() -> None:
    parked = CheckpointReport("t1", 1, "celery@w1-1", 42, "task_start", reported_at=time.time())
    settings = Settings(fault="broker-outage", outage_seconds=0.0)
    landed, log = land(broker_outage, settings, refused=True, report=parked)
    assert log == ["stopped", "released", "refused", "started"]
    assert landed.landed
    missed, log = land(broker_outage, settings, refused=False, report=parked)
    assert log == ["stopped", "released", "never refused", "started"]
    assert not missed.landed
    assert missed.detail.endswith("w2-1: not refused a reconnection within 15 s of the outage")


def test_worker_logs_are_read_by_name_from_the_runs_directory(tmp_path: Path) -> None:
    """The refusal wait reads logs while other lanes' crews start: a worker
    asked for by name whose log is not there yet is left out, not an error."""
    from rig.backends.docker_workers import WorkerContainers

    workers = WorkerContainers(cast(Any, None), cast(Any, None), tmp_path)
    (tmp_path / "w1-1.log").write_text("w1-1: consumer: Cannot connect")
    workers.workers["w1-1"] = cast(Any, None)
    workers.workers["w2-1"] = cast(Any, None)  # started, nothing logged yet
    assert workers.logs(["w1-1", "w2-1"]) == {"w1-1": "w1-1: consumer: Cannot connect"}
    assert workers.logs() == {"w1-1": "w1-1: consumer: Cannot connect"}


def test_a_worker_not_refused_is_named_with_the_last_line_it_logged() -> None:
    from types import SimpleNamespace

    from rig.crew_watch import REFUSED, CrewWatch
    from rig.history import History

    logs = {
        "w1-1": f"ready\n{REFUSED} redis://broker: Error 111\n",
        "w1-2": "ready\nTask retry_then_create[abc] received\n\n",
    }
    backend = SimpleNamespace(worker_logs=lambda names: {name: logs[name] for name in names})
    crew = SimpleNamespace(names=["w1-1", "w1-2"])
    watch = CrewWatch(cast(Any, crew), cast(Any, backend), History())

    assert watch.not_refused_since({"w1-1": 0, "w1-2": 0}, 0.2) == (
        "w1-2 (its log's last line: 'Task retry_then_create[abc] received')"
    )
    logs["w1-2"] += f"{REFUSED} redis://broker: Error 111\n"
    assert watch.not_refused_since({"w1-1": 0, "w1-2": 0}, 0.2) == ""
