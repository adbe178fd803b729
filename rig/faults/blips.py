"""Connection blips: `blips` times, `blip_gap_seconds` apart, every TCP
connection the worker has to its broker is reset (both ends see it) and new
ones are refused for `blip_seconds`. This is what a load balancer, a managed
Redis closing connections, or a network flap does to a worker. A partition
(packets dropped) is different: TCP rides out a short one and nothing
reconnects.

The execution at the point stays parked through the blips, and each blip
waits until the worker is connected again, so every blip lands on a
connected worker holding the same unacknowledged message, however long a
reconnection takes. It goes on once the worker is back after the last one.
The question is what that message goes through, and whether the worker goes
on consuming: celery#8030, #10205 and #10302 report workers that reconnect
to Redis and then stop consuming, alive and silent (settle's "stopped
consuming" ends such a run with the messages counted unconsumed)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rig.backends.base import Exit, Partitions
from rig.errors import BadInput
from rig.faults import FaultContext, FaultRecord, record
from rig.schema import setting

NAME = "blips"
SUMMARY = "--blips resets of the worker's broker connections, --blip-seconds each"
NEEDS = ("partition",)
# A worker reconnects within a few seconds of a blip (kombu retries at once, then
# 2, 4 and 6 s apart); one that has not within this long will not by itself.
RECONNECT_S = 12.0
# The execution is held through every blip and its bounded reconnection, so the
# checkpoint parks it this long (rig.settings.Settings.park_s), not the default 20 s.
PARK_S = 45.0


@dataclass(frozen=True)
class Parameters:
    blips: int = setting(
        3, "blips: how many times the worker's broker connections are reset", minimum=1
    )
    blip_seconds: float = setting(
        0.5, "blips: how long each blip refuses new connections, in seconds", minimum=0.1
    )
    blip_gap_seconds: float = setting(
        0.5, "blips: seconds from the worker's reconnection to the next blip", minimum=0
    )


def validate(settings: Any) -> None:
    longest = settings.blips * (settings.blip_seconds + RECONNECT_S + settings.blip_gap_seconds)
    if longest >= PARK_S:
        raise BadInput(
            f"blips: {settings.blips} blips may take {longest:g} s with their reconnections; "
            f"they must fit in the {PARK_S:g} s the task is held"
        )


def start(ctx: FaultContext) -> FaultRecord:
    network = ctx.backend_as(Partitions)
    said: list[str] = []
    last: Exit | None = None
    landed = 0  # blips that reset at least one connection
    try:
        for number in range(1, ctx.settings.blips + 1):
            last = _blip(network, ctx.worker, ctx.settings.blip_seconds)
            if last is None:
                said.append(f"blip {number} did not land")
                break
            said.append(last.detail)
            landed += 1
            if not _reconnected(ctx):
                said.append(f"no connection to the broker {RECONNECT_S:g} s after blip {number}")
                break
            if number < ctx.settings.blips:
                time.sleep(ctx.settings.blip_gap_seconds)
    finally:
        ctx.release()  # the execution goes on, on the connection it has now
    every_blip = landed == ctx.settings.blips
    confirmed = Exit(last.at, "; ".join(said)) if last else None
    action = f"{ctx.settings.blips} blip(s) of {ctx.settings.blip_seconds:g} s"
    return record(
        NAME,
        ctx,
        action,
        confirmed,
        ends_execution=False,
        landed=every_blip and ctx.before_park_ends(last.at if last else None),
    )


def _blip(network: Partitions, worker: str, seconds: float) -> Exit | None:
    """One blip: reset and refuse, hold, accept again (whatever happened between)."""
    began = network.blip(worker, "broker", refuse=True)
    try:
        time.sleep(seconds)
    finally:
        network.blip(worker, "broker", refuse=False)
    return began


def _reconnected(ctx: FaultContext) -> bool:
    """Wait, bounded, until the worker's consumer answers a ping: connected again."""
    return ctx.answers(ctx.worker, RECONNECT_S)


def describe(settings: Any) -> str:
    return f"{settings.blips} x {settings.blip_seconds:g} s, {settings.blip_gap_seconds:g} s apart"
