"""The broker restarts while a task is parked at its checkpoint, others wait
in the queue and one runs on the other worker. Without persistence
(`save ""`, no AOF, as Celery's own t/smoke/redis.conf) Redis forgets the
queue and the unacknowledged set: queued tasks never run. With
`broker_persistence` it writes a snapshot as it stops (SHUTDOWN SAVE, as a
maintenance restart does) and loads it again: nothing queued is lost, and
the unacknowledged messages come back after the visibility timeout, so the
tasks that were running can run twice (their acks went to the old
connection). The task parked at the checkpoint is let go while the broker
is down and ends before it comes back, so its late ack is lost whatever the
restart's speed. The workers and the rig reconnect by themselves.

On RabbitMQ the node stops (rabbitmqctl stop) and starts again: durable
queues and persistent messages (Celery's defaults) survive, and the
deliveries that were unacknowledged are requeued as their connections close.
Without `broker_persistence` its data directory is removed first, as a node
replaced with fresh storage would start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rig.faults import FaultContext, FaultRecord, record
from rig.schema import setting

NAME = "broker-restart"
SUMMARY = "the broker restarts, keeping its data with --broker-persistence"
NEEDS = ("restart-broker",)


@dataclass(frozen=True)
class Parameters:
    broker_persistence: bool = setting(
        False,
        "broker-restart: the broker keeps its data (Redis: a snapshot saved as it stops; "
        "RabbitMQ: its data directory)",
    )


# How long the parked task gets to finish while the broker is down.
FINISH_S = 10.0


def start(ctx: FaultContext) -> FaultRecord:
    ended = False

    def finish_parked_task() -> None:
        # While the broker is down the parked task goes on and ends (the control
        # store, not the broker, holds it), so its late ack cannot reach the broker
        # however quickly it comes back.
        nonlocal ended
        ctx.release()
        ended = ctx.wait_ended(FINISH_S)

    restarted = ctx.backend.restart_broker(
        ctx.settings.transport, ctx.settings.broker_persistence, finish_parked_task
    )
    action = "restart, " + ("with" if ctx.settings.broker_persistence else "without") + " data"
    return record(
        NAME,
        ctx,
        action,
        restarted,
        ends_execution=False,
        landed=restarted is not None and ended,
        target=ctx.settings.transport,
    )


def describe(settings: Any) -> str:
    return "with its data" if settings.broker_persistence else "without persistence"
