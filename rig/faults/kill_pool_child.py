"""SIGKILL only the prefork child running the task (the pid its checkpoint
reported). The main worker lives on and sees WorkerLostError."""

from __future__ import annotations

from typing import Any

from rig.errors import BadInput
from rig.faults import FaultContext, FaultRecord, record

NAME = "pool-child"
SUMMARY = "SIGKILL of the prefork child running the task"
NEEDS = ("kill",)


def validate(settings: Any) -> None:
    if settings.pool not in (None, "prefork"):  # None: the app's own, prefork by default
        raise BadInput(
            f"fault=pool-child needs pool=prefork: the {settings.pool} pool has no child process"
        )


def start(ctx: FaultContext) -> FaultRecord:
    gone = ctx.backend.signal_process(ctx.worker, ctx.report.pid, "SIGKILL")
    target = f"{ctx.worker} pid {ctx.report.pid}"
    return record(NAME, ctx, "SIGKILL", gone, ends_execution=True, target=target)
