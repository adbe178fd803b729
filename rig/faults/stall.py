"""A stalled task (a slow call, a lock wait, a stuck remote): the task stays
at its checkpoint for `stall_seconds` while its worker lives on and keeps its
connection. Longer than Redis' visibility timeout, the message is restored
and runs again meanwhile (celery #5935); longer than RabbitMQ's
`consumer_timeout`, the broker closes the channel and requeues the delivery
(celery #6760). Either way the stalled execution then finishes too, and its
late ack goes nowhere."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rig.backends.base import Exit
from rig.faults import FaultContext, FaultRecord, Heal, below_park, healed, record
from rig.schema import setting

NAME = "stall"
SUMMARY = "the task held at its checkpoint for --stall-seconds, its worker alive"
NEEDS = ()  # the checkpoint holds it: every backend can


@dataclass(frozen=True)
class Parameters:
    stall_seconds: float = setting(
        4.0, "stall: how long the task stays held at its checkpoint, in seconds", minimum=0.5
    )


def validate(settings: Any) -> None:
    below_park("stall_seconds", settings.stall_seconds)


def start(ctx: FaultContext) -> FaultRecord:
    held = Exit(time.time(), "held at its checkpoint")
    return record(NAME, ctx, "hold", held, ends_execution=False)


def describe(settings: Any) -> str:
    return f"{settings.stall_seconds:g} s"


def lasts(settings: Any) -> float:
    return float(settings.stall_seconds)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    ctx.release()
    return healed(fault, "release", f"released after {ctx.settings.stall_seconds:g} s")
