"""A frozen worker (a long GC pause, a stopped VM): the worker is paused
(cgroup freezer on Docker, SIGSTOP to its process group locally) for
`pause_seconds`, longer than the visibility timeout, then resumed. Redis has
no consumer liveness: after the timeout a live worker restores the unacked
message and runs it again meanwhile (kombu/transport/redis.py
restore_visible); on resume the first execution finishes too."""

from __future__ import annotations

import time

from rig.faults import FaultContext, FaultRecord, Heal, healed, record

NAME = "pause"
NEEDS = ("pause",)


def start(ctx: FaultContext) -> FaultRecord:
    paused = ctx.backend.pause_worker(ctx.worker)
    return record(NAME, ctx, "pause", paused, ends_execution=False)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    time.sleep(max(0.0, fault.checkpoint_at + ctx.settings.pause_seconds - time.time()))
    ctx.backend.resume_worker(ctx.worker)
    ctx.release()  # the frozen execution goes on from its checkpoint
    return healed(NAME, ctx.worker, "resume", f"resumed after {ctx.settings.pause_seconds:g} s")
