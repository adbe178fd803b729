"""The broker restarts while every running execution is held at its
checkpoint (one per process) and the rest wait in the queue. Holding them all
controls the race: none can finish and take the next message while the
broker goes down, so what is queued at the restart is fixed. Without
persistence (`save ""`, no AOF, as Celery's own t/smoke/redis.conf) Redis
forgets the queue and the unacknowledged set: queued tasks never run. With
`broker_persistence` it writes a snapshot as it stops (SHUTDOWN SAVE, as a
maintenance restart does) and loads it again: nothing queued is lost. The
held tasks are let go while the broker is down and end while their worker
reconnects; their late acks wait with their results and reach Redis once it
is back, so each runs once, unless the visibility timeout ends first (then
Redis hands the message out again: a race the scenario avoids with a long
one). The workers and the rig reconnect by themselves.

On RabbitMQ the broker stops (rabbit:stop(), as rabbitmqctl stop_app) and
starts again: durable queues and persistent messages (Celery's defaults)
survive, and the deliveries that were unacknowledged are requeued as their
connections close. Without `broker_persistence` its data is wiped first
(rabbit_mnesia:reset(), as rabbitmqctl reset), as a node replaced with fresh
storage would start."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rig.backends.base import RestartsBrokers
from rig.faults import REFUSED_S, FaultContext, FaultRecord, noting_not_refused, record
from rig.schema import setting

NAME = "broker-restart"
SUMMARY = "the broker restarts, keeping its data with --broker-persistence"
STOPS_BROKER = True  # its runs take the broker node such runs have alone (rig.lanes)
NEEDS = ("restart-broker",)


@dataclass(frozen=True)
class Parameters:
    broker_persistence: bool = setting(
        False,
        "broker-restart: the broker keeps its data (Redis: a snapshot saved as it stops; "
        "RabbitMQ: its data directory)",
    )


# How long the held tasks get to finish while the broker is down.
FINISH_S = 10.0
# How long the other running executions get to reach the point once the first has.
HOLD_WAIT_S = 10.0


def parks(settings: Any, processes: int) -> int:
    """Every execution that can run at once is held at the point, so none can
    finish and take the next message while the broker goes down (stopping it
    takes a second or more): what is queued at the restart is fixed."""
    return min(settings.tasks, processes)


def start(ctx: FaultContext) -> FaultRecord:
    held = [ctx.report, *ctx.wait_others_parked(HOLD_WAIT_S)]
    if len(held) < ctx.parks:
        for report in held:
            ctx.control.release(report)
        missing = record(NAME, ctx, "restart", None, ends_execution=False, landed=False)
        return replace(
            missing, detail=f"only {len(held)} of {ctx.parks} executions reached {ctx.report.point}"
        )
    ended, not_refused = False, ""
    refusals = ctx.refusals()

    def finish_held_tasks() -> None:
        # While the broker is down the held tasks go on and end (the control
        # store, not the broker, holds them), so their late acks cannot reach the
        # broker however quickly it comes back. It stays down until every worker
        # has been refused a reconnection: each has closed its old connection by
        # then, so kombu's restore of its unacknowledged messages (the held ones,
        # on Redis) met the broker away. A worker slow to notice on a loaded
        # machine restored them once the broker was back, and a held task ran
        # twice (once in a CI rehearsal).
        nonlocal ended, not_refused
        for report in held:
            ctx.control.release(report)
        ended = all(ctx.wait_ended(FINISH_S, report) for report in held)
        not_refused = ctx.not_refused_since(refusals, REFUSED_S)

    restarted = ctx.backend_as(RestartsBrokers).restart_broker(
        ctx.settings.transport,
        ctx.settings.broker_persistence,
        finish_held_tasks,
        ctx.settings.broker_node,
    )
    action = "restart, " + ("with" if ctx.settings.broker_persistence else "without") + " data"
    restart = record(
        NAME,
        ctx,
        action,
        restarted,
        ends_execution=False,
        landed=restarted is not None and ended and not not_refused,
        target=ctx.settings.transport,
    )
    # (not_refused is "" unless the broker stopped: the wait runs while it is down)
    return noting_not_refused(restart, not_refused, "stop")


def describe(settings: Any) -> str:
    return "with its data" if settings.broker_persistence else "without persistence"
