"""Faults (Jepsen's nemeses): one module each, registered in rig.faults.registry.

A fault module declares NAME (its `fault` setting), SUMMARY (a phrase for
--help), NEEDS (the backend capabilities it uses, see
rig.backends.base.CAPABILITIES) and

    start(ctx) -> FaultRecord    land on the execution parked at ctx.report's
                                 checkpoint, and confirm it landed
    parks(settings, processes) -> int
                                 (optional) how many executions the point holds
                                 for the fault (default 1); `processes` is how
                                 many the crew's pools run at once
    heal(ctx, record) -> Heal | None
                                 (optional) undo what can be undone: resume,
                                 reconnect, restart; it never waits
    lasts(settings) -> float     (optional) seconds from the checkpoint to the
                                 heal (default 0: at once); the runner heals
                                 on a timer of its own, so faults can overlap

A fault that lands outside any execution (kill-fetching: before the task
runs) has no start(); it brings a Plan(name, settings) instead, which sends
the work and lands the fault itself (rig.plans.Plan).

And, where it has them: Parameters (a dataclass of its own settings, see
rig.schema), validate(settings), describe(settings) for the report,
task_kwargs(settings) for what the task is sent with, and PARK_S when it
holds its execution longer than the checkpoint's default park (blips).

A fault acts and confirms; it never judges the run (that is the checker's job),
and the runner knows none of them by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from rig.backends.base import Backend, Exit
from rig.checkpoints import RECEIVED
from rig.control import PARK_S, CheckpointReport, Control
from rig.errors import BadInput, RigError

Capability = TypeVar("Capability")

# How long every worker of the crew gets to be refused a reconnection once a
# fault has stopped the broker (FaultContext.not_refused_since): each has
# closed its old connection by then, and kombu's restore of its
# unacknowledged messages met the broker away.
REFUSED_S = 15.0


@dataclass(frozen=True)
class FaultContext:
    fault_id: str  # this fault's id in its run ("f1", "f2", ...): its heal names it
    backend: Backend
    control: Control  # the crew's: to release a parked task
    settings: Any  # rig.settings.Settings (which imports the registry, hence Any)
    report: CheckpointReport
    park_s: float  # how long the task stays parked unless released
    parks: int = 1  # how many executions the point was armed for (the fault's parks())
    # Does this worker's consumer answer a ping within timeout_s (its broker
    # connection is up again)? The crew's, from the runner.
    answers: Callable[[str, float], bool] = field(default=lambda worker, timeout_s: False)
    # Is every live worker of the crew waiting on the broker for its next
    # message, within timeout_s? The crew's, from the runner.
    all_waiting: Callable[[float], bool] = field(default=lambda timeout_s: False)
    # Has the main process of the parked execution's worker taken it as started
    # (Celery's task-started event: its request is active, so a cold shutdown
    # cancels it), within timeout_s? The run's, from the runner.
    accepted: Callable[[CheckpointReport, float], bool] = field(
        default=lambda report, timeout_s: False
    )
    # How often each live worker of the crew has been refused a connection to
    # the broker so far (Celery logs "consumer: Cannot connect to"); and which
    # were not refused again since such a count within timeout_s ("" if none).
    # The crew's.
    refusals: Callable[[], dict[str, int]] = field(default=dict)
    not_refused_since: Callable[[dict[str, int], float], str] = field(
        default=lambda before, timeout_s: "every worker"
    )
    issued_at: float = field(default_factory=time.time)  # the fault begins as its context does

    @property
    def worker(self) -> str:
        """The backend's worker name from the task's node name (celery@<name>)."""
        return self.report.hostname.split("@", 1)[-1]

    def backend_as(self, capability: type[Capability]) -> Capability:
        """The backend as a capability the fault NEEDS (rig.backends.base); the
        catalog skips a scenario whose backend lacks it, so this only guards."""
        if not isinstance(self.backend, capability):
            raise RigError(f"the {self.backend.info.name} backend lacks {capability.__name__}")
        return self.backend

    def release(self) -> None:
        """Let the parked task go on."""
        self.control.release(self.report)

    def wait_others_parked(self, timeout_s: float) -> list[CheckpointReport]:
        """The other executions the point was armed for, parked there within
        timeout_s (fewer if they did not all come)."""
        others: list[CheckpointReport] = []
        deadline = time.time() + timeout_s
        while len(others) < self.parks - 1 and (left := deadline - time.time()) > 0:
            report = self.control.wait_checkpoint(self.report.point, timeout_s=left)
            if report is not None:
                others.append(report)
        return others

    def wait_ended(self, timeout_s: float, report: CheckpointReport | None = None) -> bool:
        """Wait, bounded, until the execution hit (or `report`'s) has ended (its
        ledger record says so)."""
        execution = report or self.report
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            for row in self.control.ledger():
                hit = (row["task_id"], row["attempt"]) == (execution.task_id, execution.attempt)
                if hit and row.get("ended_at"):
                    return True
            time.sleep(0.05)
        return False

    def before_park_ends(self, at: float | None) -> bool:
        """Did the fault land in its window? A parked task's window is its park;
        a message held at RECEIVED (never parked) is in it until it starts anywhere."""
        if at is None:
            return False
        if self.report.point == RECEIVED:
            return not any(
                row["task_id"] == self.report.task_id and row["started_at"] < at
                for row in self.control.ledger()
            )
        return at < self.report.reported_at + self.park_s


@dataclass(frozen=True)
class FaultRecord:
    id: str  # unique in its run; the heal carries it
    name: str
    target: str
    action: str  # what was done: "SIGKILL", "SIGTERM, SIGKILL after 2 s", "pause", ...
    task_id: str
    attempt: int
    point: str
    checkpoint_at: float
    issued_at: float  # when the rig began the fault: a death it causes comes after
    confirmed_at: float | None  # when the rig saw it done (a kill: after the death)
    landed: bool  # confirmed, and while the task was where the fault aimed
    ends_execution: bool  # the execution it hit cannot finish (a kill)
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Heal:
    fault_id: str  # the FaultRecord.id it undoes
    name: str
    target: str
    action: str
    healed_at: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record(
    name: str,
    ctx: FaultContext,
    action: str,
    confirmed: Exit | None,
    ends_execution: bool,
    landed: bool | None = None,
    target: str | None = None,
) -> FaultRecord:
    """A fault's record; by default it landed if confirmed before the park ended."""
    at = confirmed.at if confirmed else None
    if landed is None:
        landed = ctx.before_park_ends(at)
    detail = confirmed.detail if confirmed else "not confirmed"
    if confirmed and not landed:
        detail += ", after the task had moved on"
    return FaultRecord(
        id=ctx.fault_id,
        name=name,
        target=target or ctx.worker,
        action=action,
        task_id=ctx.report.task_id,
        attempt=ctx.report.attempt,
        point=ctx.report.point,
        checkpoint_at=ctx.report.reported_at,
        issued_at=ctx.issued_at,
        confirmed_at=at,
        landed=landed,
        ends_execution=ends_execution,
        detail=detail,
    )


def noting_not_refused(fault: FaultRecord, workers: str, since: str) -> FaultRecord:
    """The record of a fault that stopped the broker, its detail naming the
    workers (comma-separated; "" if none, the record as it is) not refused a
    reconnection within REFUSED_S of `since` (the stop, the outage)."""
    if not workers:
        return fault
    why = f"{workers}: not refused a reconnection within {REFUSED_S:g} s of the {since}"
    return replace(fault, detail=f"{fault.detail}; {why}")


def below_park(name: str, seconds: float) -> None:
    """A fault that holds its task must end before the checkpoint's park does."""
    if seconds >= PARK_S:
        raise BadInput(f"{name} must stay below {PARK_S:g} s, the checkpoint's park")


def healed(fault: FaultRecord, action: str, detail: str) -> Heal:
    """The heal of `fault`, done now."""
    return Heal(fault.id, fault.name, fault.target, action, time.time(), detail)
