"""SIGKILL only the prefork child running the task (the pid its checkpoint
reported). The main worker lives on and sees WorkerLostError."""

from __future__ import annotations

from rig.faults import FaultContext, FaultRecord, Heal, record

NAME = "pool-child"
NEEDS = ("kill",)


def start(ctx: FaultContext) -> FaultRecord:
    gone = ctx.backend.signal_process(ctx.worker, ctx.report.pid, "SIGKILL")
    target = f"{ctx.worker} pid {ctx.report.pid}"
    return record(NAME, ctx, "SIGKILL", gone, ends_execution=True, target=target)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    return None  # the worker forks a new child itself
