"""A deploy: SIGTERM to the worker, then SIGKILL if it is still alive after
the grace period (`grace`), as `docker stop` (10 s) and Kubernetes (30 s) do.
SIGTERM is Celery's warm shutdown: it stops fetching and waits for running
tasks, so a task that finishes within the grace is acknowledged, and a longer
one dies with the SIGKILL (celery docs/userguide/workers.rst, "Stopping the
worker"). The signal goes to the main process only, as Docker sends it to
PID 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rig.faults import FaultContext, FaultRecord, record
from rig.schema import setting

NAME = "term"
SUMMARY = "a deploy, SIGTERM then SIGKILL after --grace"
NEEDS = ("kill",)
# It acts on the whole worker: it can land on a message held at at=received.
LANDS_WHILE_HELD = True


@dataclass(frozen=True)
class Parameters:
    grace: float = setting(
        10.0, "term: seconds between SIGTERM and SIGKILL (docker stop's default)", minimum=0
    )


def outlives_grace(settings: Any) -> bool:
    """The built-in task's length is known: one at least as long as the grace is
    still running when the SIGKILL comes. The rig keeps it so by construction
    (held at its checkpoint), since its own SIGKILL can lag the grace by a
    second on a loaded machine, where a real deploy's would not."""
    return not settings.app and settings.task_seconds >= settings.grace


def start(ctx: FaultContext) -> FaultRecord:
    ctx.backend.signal_worker(ctx.worker, "SIGTERM")
    if not outlives_grace(ctx.settings):
        ctx.release()  # the task goes on while the worker shuts down
    exited = ctx.backend.wait_exit(ctx.worker, timeout_s=ctx.settings.grace)
    if exited is not None:
        return record(NAME, ctx, "SIGTERM", exited, ends_execution=False, landed=True)
    killed = ctx.backend.signal_worker(ctx.worker, "SIGKILL")
    died = ctx.backend.wait_exit(ctx.worker, timeout_s=10)
    if not killed:  # its warm shutdown ended between the grace's end and the SIGKILL
        action = f"SIGTERM, exited just after the {ctx.settings.grace:g} s grace"
        return record(NAME, ctx, action, died, ends_execution=False, landed=died is not None)
    action = f"SIGTERM, SIGKILL after {ctx.settings.grace:g} s"
    return record(NAME, ctx, action, died, ends_execution=True, landed=died is not None)


def describe(settings: Any) -> str:
    return f"grace {settings.grace:g} s"
