"""A frozen worker (a long GC pause, a stopped VM): the worker is paused
(cgroup freezer on Docker, SIGSTOP to its process group locally) for
`pause_seconds`, longer than the visibility timeout, then resumed. Redis has
no consumer liveness: after the timeout a live worker restores the unacked
message and runs it again meanwhile (kombu/transport/redis.py
restore_visible); on resume the first execution finishes too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rig.backends.base import Pauses
from rig.faults import FaultContext, FaultRecord, Heal, below_park, healed, record
from rig.schema import setting

NAME = "pause"
SUMMARY = "the worker frozen for --pause-seconds"
NEEDS = ("pause",)


@dataclass(frozen=True)
class Parameters:
    pause_seconds: float = setting(
        4.0, "pause: how long the worker stays frozen, in seconds", minimum=0.5
    )


def validate(settings: Any) -> None:
    below_park("pause_seconds", settings.pause_seconds)


def start(ctx: FaultContext) -> FaultRecord:
    paused = ctx.backend_as(Pauses).pause_worker(ctx.worker)
    return record(NAME, ctx, "pause", paused, ends_execution=False)


def describe(settings: Any) -> str:
    return f"{settings.pause_seconds:g} s"


def lasts(settings: Any) -> float:
    return float(settings.pause_seconds)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    ctx.backend_as(Pauses).resume_worker(ctx.worker)
    ctx.release()  # the frozen execution goes on from its checkpoint
    return healed(fault, "resume", f"resumed after {ctx.settings.pause_seconds:g} s")
