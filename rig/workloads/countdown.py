"""Keyed calls sent with a countdown (an ETA message): a worker reserves the
message at once and holds it in memory, unacknowledged, until it is due.

That wait is what users meet in production (../shared/celery-semantics.md,
"Countdown/ETA on Redis" and "RabbitMQ consumer_timeout and ETA"): Redis
restores a held message once the visibility timeout passes and another worker
reserves it too, again every timeout (kombu#337, celery#2481); RabbitMQ
closes a channel whose delivery stays unacknowledged past consumer_timeout
(celery#6760)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rig.errors import BadInput
from rig.schema import setting
from rig.workloads.keyed import send_keyed

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "countdown"
SUMMARY = "as keyed, each call sent with --countdown seconds (an ETA message)"


@dataclass(frozen=True)
class Parameters:
    countdown: float = setting(
        0.0,
        "countdown workload: seconds each task waits, held by a worker, before it runs "
        "(apply_async countdown)",
        minimum=0,
    )


def validate(settings: Any) -> None:
    if settings.countdown <= 0:
        raise BadInput("workload=countdown needs countdown > 0: the seconds each task waits")


def send(run: RunContext, index: int) -> None:
    send_keyed(run, index, countdown=run.settings.countdown)


def describe(settings: Any) -> str:
    return f"{settings.countdown:g}s countdown"
