"""The kernel's OOM killer: each worker runs under a memory limit
(`memory_limit_mb`, a container's --memory without swap) and the task, let go
from its checkpoint, allocates past it (`allocate_mb`). The kernel kills the
biggest process of the cgroup, the pool child running the task; Docker
reports an `oom` event (recorded in the history). The main worker lives on:
this is the pool-child kill (WorkerLostError), by the kernel."""

from __future__ import annotations

from rig.faults import FaultContext, FaultRecord, Heal, record

NAME = "oom"
NEEDS = ("memory-limit",)


def start(ctx: FaultContext) -> FaultRecord:
    ctx.release()  # the task allocates once it goes on
    gone = ctx.backend.wait_process_gone(ctx.worker, ctx.report.pid, timeout_s=30)
    action = f"{ctx.settings.allocate_mb} MiB under a {ctx.settings.memory_limit_mb} MiB limit"
    target = f"{ctx.worker} pid {ctx.report.pid}"
    # It lands when the process dies after its release, whenever that is.
    return record(
        NAME, ctx, action, gone, ends_execution=True, landed=gone is not None, target=target
    )


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    return None  # the worker forks a new child itself
