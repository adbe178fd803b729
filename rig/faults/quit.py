"""Cold shutdown: SIGQUIT to the worker. Celery 5.5+ gives running tasks
`worker_soft_shutdown_timeout` seconds first (soft shutdown), then cancels
them (Consumer.cancel_active_requests) and restores their unacknowledged
messages at once ("Restoring N unacknowledged message(s)",
celery/worker/consumer/consumer.py); with no soft timeout the worker stops
at once. This is the `REMAP_SIGTERM=SIGQUIT` recipe Kubernetes users run, with
a soft timeout below the grace period."""

from __future__ import annotations

from typing import Any

from rig.faults import FaultContext, FaultRecord, record

NAME = "quit"
SUMMARY = "SIGQUIT cold shutdown, after --soft-shutdown-timeout"
NEEDS = ("kill",)
# It acts on the whole worker: it can land on a message held at at=received.
LANDS_WHILE_HELD = True


def start(ctx: FaultContext) -> FaultRecord:
    ctx.backend.signal_worker(ctx.worker, "SIGQUIT")
    ctx.release()  # the task goes on while the worker shuts down
    exited = ctx.backend.wait_exit(ctx.worker, timeout_s=ctx.settings.soft_shutdown_timeout + 15)
    action = f"SIGQUIT, soft shutdown {ctx.settings.soft_shutdown_timeout:g} s"
    return record(NAME, ctx, action, exited, ends_execution=False, landed=exited is not None)


def describe(settings: Any) -> str:
    return f"soft shutdown {settings.soft_shutdown_timeout:g} s"
