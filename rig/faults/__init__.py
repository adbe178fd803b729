"""Faults (Jepsen's nemesis), one per module, each with the same narrow
interface: inject(backend, checkpoint) -> FaultRecord. A fault acts and
confirms; it never judges the run (that is the checker's job).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rig.backends.base import KillResult
from rig.broker import CheckpointReport


@dataclass(frozen=True)
class FaultRecord:
    name: str
    target: str
    signal: str
    task_id: str
    attempt: int
    point: str
    checkpoint_at: float
    confirmed_at: float | None
    # Confirmed, and while the task was still parked at its checkpoint.
    landed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record(name: str, report: CheckpointReport, result: KillResult, park_s: float) -> FaultRecord:
    """A kill landed if it was confirmed before the parked task could move on."""
    landed = result.confirmed_at is not None and result.confirmed_at < report.reported_at + park_s
    detail = (
        result.detail
        if landed or not result.confirmed
        else f"{result.detail}, after the park ended"
    )
    return FaultRecord(
        name=name,
        target=result.target,
        signal=result.signal,
        task_id=report.task_id,
        attempt=report.attempt,
        point=report.point,
        checkpoint_at=report.reported_at,
        confirmed_at=result.confirmed_at,
        landed=landed and result.confirmed,
        detail=detail,
    )


def worker_name(report: CheckpointReport) -> str:
    """The backend's worker name from the task's node name (celery@<name>)."""
    return report.hostname.split("@", 1)[-1]
