"""A network partition: the worker is cut off from the broker or the
database (`partition_from`) for `partition_seconds`, then reconnected.
Redis has no consumer liveness, so a partition from the broker looks like a
freeze: after the visibility timeout another worker runs the task again,
while the cut-off worker finishes its run and cannot send the ack until the
heal (celery-semantics: "a partition looks like a freeze"). Cut off from the
database, the task's writes wait for the heal while the same happens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rig.backends.base import Partitions
from rig.faults import FaultContext, FaultRecord, Heal, healed, record
from rig.schema import setting

NAME = "partition"
SUMMARY = "the worker cut off from --partition-from for --partition-seconds"
NEEDS = ("partition",)


@dataclass(frozen=True)
class Parameters:
    partition_from: Literal["broker", "database"] = setting(
        "broker", "partition: what the worker is cut off from, the broker or the database"
    )
    partition_seconds: float = setting(
        4.0, "partition: how long the worker stays cut off, in seconds", minimum=0.5
    )


def start(ctx: FaultContext) -> FaultRecord:
    peer = ctx.settings.partition_from
    # The parked task hears its release over the broker: let it go before a
    # cut from the broker, after a cut from the database.
    if peer == "broker":
        ctx.release()
    cut = ctx.backend_as(Partitions).partition(ctx.worker, peer, cut=True)
    if peer == "database":
        ctx.release()
    return record(
        NAME, ctx, f"cut from the {peer}", cut, ends_execution=False, landed=cut is not None
    )


def describe(settings: Any) -> str:
    return f"from the {settings.partition_from} for {settings.partition_seconds:g} s"


def lasts(settings: Any) -> float:
    return float(settings.partition_seconds)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    joined = ctx.backend_as(Partitions).partition(
        ctx.worker, ctx.settings.partition_from, cut=False
    )
    detail = joined.detail if joined else "the rule could not be removed"
    return healed(fault, "reconnect", detail)
