"""A hard time limit: the task stays parked at its checkpoint past
`time_limit`, so billiard's timeout handler kills the pool child
(TimeLimitExceeded). With acks_late, Request.on_timeout then acknowledges
the message when task_acks_on_timeout is on (the default, through
task_acks_on_failure_or_timeout) and requeues it when off
(celery/worker/request.py, Request.on_timeout). Only prefork enforces hard
time limits."""

from __future__ import annotations

from typing import Any

from rig.control import PARK_S
from rig.errors import BadInput
from rig.faults import FaultContext, FaultRecord, record

NAME = "time-limit"
SUMMARY = "the task outlives its hard --time-limit"
NEEDS = ("kill",)


def validate(settings: Any) -> None:
    if settings.pool not in (None, "prefork"):  # None: the app's own, prefork by default
        raise BadInput("fault=time-limit needs pool=prefork: only prefork enforces hard limits")
    if not 0 < settings.time_limit < PARK_S:
        raise BadInput(
            f"fault=time-limit needs 0 < time_limit < {PARK_S:g} s: the task waits "
            "for its limit parked at the checkpoint"
        )


def start(ctx: FaultContext) -> FaultRecord:
    # Nothing to send: the parked task outlives its limit; confirm the child died.
    gone = ctx.backend.wait_process_gone(
        ctx.worker, ctx.report.pid, timeout_s=ctx.settings.time_limit + 10
    )
    action = f"hard time limit {ctx.settings.time_limit:g} s"
    target = f"{ctx.worker} pid {ctx.report.pid}"
    return record(NAME, ctx, action, gone, ends_execution=True, target=target)


def describe(settings: Any) -> str:
    on_timeout = "requeued" if settings.acks_on_timeout is False else "acked"
    return f"limit {settings.time_limit:g} s, {on_timeout} on timeout"
