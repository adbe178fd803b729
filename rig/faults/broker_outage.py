"""The broker is away for a while (`outage_seconds`) and comes back with its
data: stopped as in a maintenance restart (Redis: SHUTDOWN SAVE; RabbitMQ:
rabbit:stop(), as rabbitmqctl stop_app), held down, started again. The
execution at the point goes on as soon as the broker is down, so what it
does next (a producer's publish from on_commit, a retry's publish) meets no
broker; a message held at `received` (an ETA task in a worker's memory) sees
its connection drop once its worker waits on the broker again, as a worker
holding a countdown does nearly all the time (see WAITING_S).

Unlike broker-restart it waits for nothing the execution does: a publish
that retries (task_publish_retry_policy) may still be retrying when the
broker returns, and that is what such a scenario measures. It waits for the
workers only: the broker stays down until each has been refused a
reconnection too (at once, as a rule), so each has closed its connection and
tried to restore its unacknowledged messages while the broker was away. A
worker slow to notice on a loaded machine restored a late-ack task once the
broker was back, and it ran again (retry_publish_broker_away, Redis on
Docker, once)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from rig.backends.base import RestartsBrokers
from rig.checkpoints import RECEIVED
from rig.faults import REFUSED_S, FaultContext, FaultRecord, noting_not_refused, record
from rig.schema import setting

NAME = "broker-outage"
SUMMARY = "the broker is away for --outage-seconds, then back with its data"
STOPS_BROKER = True  # its runs take the broker node such runs have alone (rig.lanes)
NEEDS = ("restart-broker",)
# It acts on the broker, not on the execution: it can land on a message held at at=received.
LANDS_WHILE_HELD = True
# A message held at `received`: the broker goes away only once every worker,
# the holder too, is blocked on it for its next message. The holder reports
# the point from its event loop, where a Redis worker's BRPOP may be between
# two sends (each ends within a second and is sent again on the next turn);
# a worker that loses Redis in that moment takes another path in kombu (it
# reconnects, where a waiting worker exits): measured 3 of 3 with the stop
# forced into it. Within this bound, or the fault does not land.
WAITING_S = 10.0


@dataclass(frozen=True)
class Parameters:
    outage_seconds: float = setting(
        3.0, "broker-outage: how long the broker stays down once stopped", minimum=0
    )


def start(ctx: FaultContext) -> FaultRecord:
    action = f"down {ctx.settings.outage_seconds:g} s, back with its data"
    if ctx.report.point == RECEIVED and not ctx.all_waiting(WAITING_S):
        target = ctx.settings.transport
        missing = record(NAME, ctx, action, None, False, landed=False, target=target)
        waited = f"the workers were not all waiting on the broker within {WAITING_S:g} s"
        return replace(missing, detail=waited)

    down_at: float | None = None
    not_refused = ""
    refusals = ctx.refusals()

    def away() -> None:
        nonlocal down_at, not_refused
        down_at = time.time()  # the broker has stopped: its connections are closed
        ctx.release()  # the execution goes on against no broker
        time.sleep(ctx.settings.outage_seconds)  # the outage itself: this fault's length
        not_refused = ctx.not_refused_since(refusals, REFUSED_S)  # at once, as a rule

    restarted = ctx.backend_as(RestartsBrokers).restart_broker(
        ctx.settings.transport, True, away, ctx.settings.broker_node
    )
    # Landed only if the broker was down before the held message started anywhere
    # (an ETA that fires first runs the task on a connection the stop then closes,
    # and its late ack is lost: another scenario), or within the parked task's park.
    outage = record(
        NAME,
        ctx,
        action,
        restarted,
        ends_execution=False,
        landed=restarted is not None and ctx.before_park_ends(down_at) and not not_refused,
        target=ctx.settings.transport,
    )
    # (not_refused is "" unless the broker stopped: the wait runs while it is down)
    return noting_not_refused(outage, not_refused, "outage")


def describe(settings: Any) -> str:
    return f"away {settings.outage_seconds:g} s"
