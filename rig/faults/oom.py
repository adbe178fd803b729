"""The kernel's OOM killer: each worker runs under a memory limit
(`memory_limit_mb`, a container's --memory without swap) and the task, let go
from its checkpoint, allocates past it (`allocate_mb`). The kernel kills the
biggest process of the cgroup, the pool child running the task; Docker
reports an `oom` event (recorded in the history). The main worker lives on:
this is the pool-child kill (WorkerLostError), by the kernel."""

from __future__ import annotations

from typing import Any

from rig.errors import BadInput
from rig.faults import FaultContext, FaultRecord, record

NAME = "oom"
SUMMARY = "the task allocates --allocate-mb past the worker's --memory-limit-mb"
NEEDS = ("memory-limit",)


def validate(settings: Any) -> None:
    if settings.app:
        raise BadInput(
            "fault=oom needs the built-in tasks: they allocate --allocate-mb when asked, "
            "a task of yours would not"
        )
    if not 0 < settings.memory_limit_mb < settings.allocate_mb:
        raise BadInput(
            "fault=oom needs 0 < memory_limit_mb < allocate_mb: the task must allocate "
            "past the worker's limit"
        )


def start(ctx: FaultContext) -> FaultRecord:
    ctx.release()  # the task allocates once it goes on
    gone = ctx.backend.wait_process_gone(ctx.worker, ctx.report.pid, timeout_s=30)
    action = f"{ctx.settings.allocate_mb} MiB under a {ctx.settings.memory_limit_mb} MiB limit"
    target = f"{ctx.worker} pid {ctx.report.pid}"
    # It lands when the process dies after its release, whenever that is.
    return record(
        NAME, ctx, action, gone, ends_execution=True, landed=gone is not None, target=target
    )


def describe(settings: Any) -> str:
    return f"{settings.allocate_mb} MiB past {settings.memory_limit_mb} MiB"
