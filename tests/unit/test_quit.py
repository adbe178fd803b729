"""The cold shutdown's fault: the worker is signalled only once its main process
has taken the parked task as started (a request Celery's shutdown cancels)."""

from __future__ import annotations

from typing import cast

from rig.backends.base import Backend, Exit
from rig.control import CheckpointReport, Control
from rig.faults import FaultContext, quit
from rig.settings import Settings


class Signals:
    """What the fault did to the worker; it exits at once when signalled."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def signal_worker(self, worker: str, signal: str) -> None:
        self.sent.append((worker, signal))

    def wait_exit(self, worker: str, timeout_s: float) -> Exit:
        return Exit(at=101.0, detail="exited 1")


class Releases:
    def __init__(self) -> None:
        self.released: list[CheckpointReport] = []

    def release(self, report: CheckpointReport) -> None:
        self.released.append(report)


def context(accepted: bool, point: str = "task_start") -> tuple[FaultContext, Signals, Releases]:
    signals, releases = Signals(), Releases()
    report = CheckpointReport("t1", 1, "celery@w1-1", 42, point, reported_at=100.0)

    def taken(asked: CheckpointReport, timeout_s: float) -> bool:
        assert asked == report  # the execution the fault is about, not another
        return accepted

    ctx = FaultContext(
        "f1",
        cast(Backend, signals),
        cast(Control, releases),
        Settings(fault="quit", soft_shutdown_timeout=0),
        report,
        park_s=30.0,
        accepted=taken,
    )
    return ctx, signals, releases


def test_a_task_its_worker_has_taken_is_signalled_then_let_go() -> None:
    ctx, signals, releases = context(accepted=True)
    fault = quit.start(ctx)
    assert signals.sent == [("w1-1", "SIGQUIT")]
    assert releases.released == [ctx.report]
    assert fault.landed and fault.confirmed_at == 101.0


def test_a_task_its_worker_has_not_taken_is_not_signalled_and_the_fault_did_not_land() -> None:
    ctx, signals, releases = context(accepted=False)
    fault = quit.start(ctx)
    assert signals.sent == [] and releases.released == []
    assert not fault.landed
    assert "had not taken the task" in fault.detail


def test_a_message_held_at_received_is_signalled_without_asking() -> None:
    # No execution has started: there is nothing for the main process to take.
    ctx, signals, _ = context(accepted=False, point="received")
    assert quit.start(ctx).landed
    assert signals.sent == [("w1-1", "SIGQUIT")]
