"""Cold shutdown: SIGQUIT to the worker. Celery 5.5+ gives running tasks
`worker_soft_shutdown_timeout` seconds first (soft shutdown), then cancels
them (Consumer.cancel_active_requests) and restores their unacknowledged
messages at once ("Restoring N unacknowledged message(s)",
celery/worker/consumer/consumer.py); with no soft timeout the worker stops
at once. This is the `REMAP_SIGTERM=SIGQUIT` recipe Kubernetes users run, with
a soft timeout below the grace period."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rig.checkpoints import RECEIVED
from rig.faults import FaultContext, FaultRecord, record

NAME = "quit"
SUMMARY = "SIGQUIT cold shutdown, after --soft-shutdown-timeout"
NEEDS = ("kill",)
# It acts on the whole worker: it can land on a message held at at=received.
LANDS_WHILE_HELD = True
# A parked execution is signalled only once its worker's main process has taken
# it as started (the pool child reports that on a pipe the main process reads
# on its next turn): the cold shutdown cancels, and the soft one waits for,
# only the requests it knows are active. Signalled before, the task was not
# cancelled, finished and acked: it ran once where Celery runs it twice (1 in 5
# local runs on RabbitMQ). Within this bound, or the fault does not land.
ACCEPTED_S = 10.0


def start(ctx: FaultContext) -> FaultRecord:
    action = f"SIGQUIT, soft shutdown {ctx.settings.soft_shutdown_timeout:g} s"
    if ctx.report.point != RECEIVED and not ctx.accepted(ctx.report, ACCEPTED_S):
        missing = record(NAME, ctx, action, None, ends_execution=False, landed=False)
        return replace(missing, detail=f"the worker had not taken the task within {ACCEPTED_S:g} s")
    ctx.backend.signal_worker(ctx.worker, "SIGQUIT")
    ctx.release()  # the task goes on while the worker shuts down
    exited = ctx.backend.wait_exit(ctx.worker, timeout_s=ctx.settings.soft_shutdown_timeout + 15)
    return record(NAME, ctx, action, exited, ends_execution=False, landed=exited is not None)


def describe(settings: Any) -> str:
    return f"soft shutdown {settings.soft_shutdown_timeout:g} s"
