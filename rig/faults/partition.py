"""A network partition: the worker is cut off from the broker or the
database (`partition_from`) for `partition_seconds`, then reconnected.
Redis has no consumer liveness, so a partition from the broker looks like a
freeze: after the visibility timeout another worker runs the task again,
while the cut-off worker finishes its run and cannot send the ack until the
heal (celery-semantics: "a partition looks like a freeze"). Cut off from the
database, the task's writes wait for the heal while the same happens."""

from __future__ import annotations

import time

from rig.faults import FaultContext, FaultRecord, Heal, healed, record

NAME = "partition"
NEEDS = ("partition",)


def start(ctx: FaultContext) -> FaultRecord:
    peer = ctx.settings.partition_from
    # The parked task hears its release over the broker: let it go before a
    # cut from the broker, after a cut from the database.
    if peer == "broker":
        ctx.release()
    cut = ctx.backend.partition(ctx.worker, peer, cut=True)
    if peer == "database":
        ctx.release()
    return record(
        NAME, ctx, f"cut from the {peer}", cut, ends_execution=False, landed=cut is not None
    )


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    time.sleep(max(0.0, fault.checkpoint_at + ctx.settings.partition_seconds - time.time()))
    joined = ctx.backend.partition(ctx.worker, ctx.settings.partition_from, cut=False)
    detail = joined.detail if joined else "the rule could not be removed"
    return healed(NAME, ctx.worker, "reconnect", detail)
