"""The broker restarts while a task is parked at its checkpoint, others wait
in the queue and one runs on the other worker. Without persistence
(`save ""`, no AOF, as Celery's own t/smoke/redis.conf) Redis forgets the
queue and the unacknowledged set: queued tasks never run. With
`broker_persistence` it writes a snapshot as it stops (SHUTDOWN SAVE, as a
maintenance restart does) and loads it again: nothing queued is lost, and
the unacknowledged messages come back after the visibility timeout, so the
tasks that were running can run twice (their acks went to the old
connection). The workers and the rig reconnect by themselves.

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


def start(ctx: FaultContext) -> FaultRecord:
    restarted = ctx.backend.restart_broker(ctx.settings.transport, ctx.settings.broker_persistence)
    # The parked task waits on the control store, which the restart leaves alone:
    # it goes on once the broker answers again.
    ctx.release()
    action = "restart, " + ("with" if ctx.settings.broker_persistence else "without") + " data"
    return record(
        NAME,
        ctx,
        action,
        restarted,
        ends_execution=False,
        landed=restarted is not None,
        target=ctx.settings.transport,
    )


def describe(settings: Any) -> str:
    return "with its data" if settings.broker_persistence else "without persistence"
