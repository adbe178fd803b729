"""Runs one scenario: workload, fault at its checkpoint, settle, check.

The order matters: the event listener starts before the workers (Redis
events are pub/sub), the checkpoint is armed before any task is sent, and
the ledger is read only once the run has settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rig import checker
from rig.backends.base import Backend, Services, WorkerSpec
from rig.broker import Broker
from rig.checker import Expected, Outcome
from rig.events import EventListener, controller_app
from rig.faults import FaultRecord, kill_container, kill_pool_child, restart_worker
from rig.history import CHECKPOINT, FAULT, LEDGER, NOTE, ROW, SENT, SETTLED, History
from rig.settings import PARK_S, TASK_NAMES, Settings
from rig.store import Store
from rig.waiting import until_nothing_missing

FAULTS = {"container": kill_container, "pool-child": kill_pool_child}
WORKERS_ONLINE_S = 90.0
TERMINAL_EVENTS = ("task-succeeded", "task-failed", "task-rejected")
STABLE_S = 0.5  # how long "nothing left to happen" must hold before a run counts as settled
Progress = Callable[[str], None]


@dataclass
class Result:
    name: str
    settings: Settings
    expect: dict[str, Expected] | None
    outcome: Outcome
    history: History
    seconds: float
    worker_logs: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "verdict": self.outcome.verdict,
            "reasons": self.outcome.reasons,
            "settings": self.settings.as_dict(),
            "expected": {
                k: list(v) if isinstance(v, tuple) else v for k, v in (self.expect or {}).items()
            },
            "counts": self.outcome.counts.as_dict(),
            "faults": [
                {key: f[key] for key in ("name", "target", "signal", "landed", "detail")}
                | {"at": f["confirmed_at"], "kill_latency_s": _latency(f)}
                for f in self.outcome.faults
            ],
            "redelivery_latency_s": self.outcome.redelivery_latency_s,
            "seconds": round(self.seconds, 2),
        }


def _latency(fault: dict[str, Any]) -> float | None:
    if fault.get("confirmed_at") is None or fault.get("signal") != "SIGKILL":
        return None
    return round(fault["confirmed_at"] - fault["checkpoint_at"], 4)


class Runner:
    """Runs scenarios one after another on one started backend."""

    def __init__(self, backend: Backend, services: Services) -> None:
        self.backend = backend
        self.services = services
        self.broker = Broker(services.broker_url)
        self.store = Store(services.database_url)
        self.app = controller_app(services.broker_url)

    def run(
        self,
        name: str,
        settings: Settings,
        expect: dict[str, Expected] | None,
        progress: Progress = lambda _message: None,
    ) -> Result:
        started = time.time()
        history = History()
        self.broker.reset()
        self.store.reset()
        listener = EventListener(self.app, history)
        listener.start()
        self.backend.observe(history)
        logs: dict[str, str] = {}
        try:
            self._run_steps(name, settings, history, listener, progress)
        except TimeoutError as error:
            # A bounded wait ran out: the run proves nothing, and says why.
            history.add(SETTLED, settled=False, reason=str(error))
        finally:
            listener.stop()
            self._collect_rows(settings, history)
            outcome = checker.check(history, expect, fault_expected=settings.kill != "none")
            if outcome.verdict in ("fail", "unknown"):
                logs = self.backend.worker_logs()
            self.backend.stop_workers()
        return Result(name, settings, expect, outcome, history, time.time() - started, logs)

    def _run_steps(
        self,
        name: str,
        settings: Settings,
        history: History,
        listener: EventListener,
        progress: Progress,
    ) -> None:
        specs = [
            WorkerSpec(f"w{i}", settings.worker_environment())
            for i in range(1, settings.workers + 1)
        ]
        if settings.kill != "none":
            self.broker.arm(settings.at)
        progress(f"{name}: starting {len(specs)} workers")
        self.backend.start_workers(specs)
        listener.wait_workers_online([spec.nodename for spec in specs], WORKERS_ONLINE_S)
        progress(f"{name}: sending {settings.tasks} task(s)")
        self._send(name, settings, history)
        fault_at = None
        if settings.kill != "none":
            progress(f"{name}: waiting for a task at {settings.at}")
            fault = self._inject(settings, history)
            fault_at = fault.confirmed_at if fault else None
        progress(f"{name}: waiting for the run to settle (redelivery, drain)")
        self._wait_settled(settings, history, fault_at or time.time(), progress)

    def _send(self, name: str, settings: Settings, history: History) -> None:
        task_name = TASK_NAMES[settings.task]
        for index in range(settings.tasks):
            key = f"{name}-{index}"
            result = self.app.send_task(
                task_name, kwargs={"key": key, "seconds": settings.task_seconds}
            )
            history.add(SENT, task_id=result.id, task=task_name, business_key=key)

    def _inject(self, settings: Settings, history: History) -> FaultRecord | None:
        report = self.broker.wait_checkpoint(timeout_s=30)
        if report is None:
            history.add(NOTE, text=f"no task reached {settings.at} within 30 s")
            return None
        history.add(CHECKPOINT, at=report.reported_at, **report.as_dict())
        fault = FAULTS[settings.kill].inject(self.backend, report, PARK_S)
        history.add(FAULT, at=fault.confirmed_at or time.time(), **fault.as_dict())
        if settings.restart and fault.landed:
            restarted = restart_worker.inject(self.backend, fault)
            history.add(FAULT, at=restarted.confirmed_at, **restarted.as_dict())
        return fault

    def _wait_settled(
        self, settings: Settings, history: History, since: float, progress: Progress
    ) -> None:
        """Wait, bounded, until nothing more can happen; record whether it did settle."""
        deadline_s = 60 + settings.tasks * settings.task_seconds * 3
        quiet_s = settings.redelivery_window_s()

        def unsettled() -> str:
            pending = self.broker.pending_messages()
            if pending:
                return f"{pending} message(s) still queued or unacknowledged"
            faults = [f.data for f in history.events(FAULT) if f.data["signal"] == "SIGKILL"]
            killed = {(f["task_id"], f["attempt"]) for f in faults}
            ledger = self.store.ledger()
            live = [
                row
                for row in ledger
                if not row["finished_at"] and (row["task_id"], row["attempt"]) not in killed
            ]
            if live:
                return f"{len(live)} execution(s) still running"
            # Every execution a worker outlived ends in a task-succeeded,
            # -failed or -rejected event; wait for them so none arrives late.
            silent = {
                (f["task_id"], f["attempt"]) for f in faults if f["name"] == kill_container.NAME
            }
            reporting = sum(1 for row in ledger if (row["task_id"], row["attempt"]) not in silent)
            reported = sum(len(history.celery(kind)) for kind in TERMINAL_EVENTS)
            if reported < reporting:
                return f"{reporting - reported} execution(s) not yet reported by their worker"
            # Early ack acknowledges before the task body runs: a started task can
            # be off the broker and not yet in the ledger. Its task-started says so.
            started = len(history.celery("task-started")) - len(silent)
            if reported < started:
                return f"{started - reported} started execution(s) not yet finished"
            finished = {row["task_id"] for row in ledger if row["finished_at"]}
            failed = {event["uuid"] for event in history.celery("task-failed")}
            open_tasks = {e.data["task_id"] for e in history.events(SENT)} - finished - failed
            if open_tasks and time.time() - since < quiet_s:
                return f"{len(open_tasks)} task(s) may still be redelivered"
            return ""

        said = ""
        calm_since: float | None = None

        def unsettled_and_said() -> str:
            nonlocal said, calm_since
            reason = unsettled()
            # Settled only once it stays so for STABLE_S: the broker, the events
            # and the ledger are read one after another, not in one snapshot.
            if reason:
                calm_since = None
            elif calm_since is None or time.time() - calm_since < STABLE_S:
                calm_since = calm_since or time.time()
                reason = "settling"
            if reason and reason != said:  # say what it waits for, once per change
                progress(f"waiting: {reason}")
                said = reason
            return reason

        reason = until_nothing_missing(unsettled_and_said, deadline_s, interval_s=0.25)
        history.add(SETTLED, settled=not reason, reason=reason or "drained and quiet")

    def _collect_rows(self, settings: Settings, history: History) -> None:
        for row in self.store.ledger():
            history.add(LEDGER, at=row["started_at"], **row)
        for row in self.store.effect_rows(settings.task):
            history.add(ROW, **row)

    def close(self) -> None:
        self.broker.close()
