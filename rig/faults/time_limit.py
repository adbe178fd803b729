"""A hard time limit: the task stays parked at its checkpoint past
`time_limit`, so billiard's timeout handler kills the pool child
(TimeLimitExceeded). With acks_late, Request.on_timeout then acknowledges
the message when task_acks_on_timeout is on (the default, through
task_acks_on_failure_or_timeout) and requeues it when off
(celery/worker/request.py, Request.on_timeout). Only prefork enforces hard
time limits."""

from __future__ import annotations

from rig.faults import FaultContext, FaultRecord, Heal, record

NAME = "time-limit"
NEEDS = ("kill",)


def start(ctx: FaultContext) -> FaultRecord:
    # Nothing to send: the parked task outlives its limit; confirm the child died.
    gone = ctx.backend.wait_process_gone(
        ctx.worker, ctx.report.pid, timeout_s=ctx.settings.time_limit + 10
    )
    action = f"hard time limit {ctx.settings.time_limit:g} s"
    target = f"{ctx.worker} pid {ctx.report.pid}"
    return record(NAME, ctx, action, gone, ends_execution=True, target=target)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    return None
