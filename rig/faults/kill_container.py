"""SIGKILL the whole worker that reached the checkpoint: its container (docker)
or its process group (local). Nothing runs its shutdown: its unacked
messages wait for the visibility timeout. Heals by starting the worker again
when the scenario says `restart`, as an orchestrator would after a crash."""

from __future__ import annotations

from rig.faults import FaultContext, FaultRecord, Heal, healed, record

NAME = "container"
SUMMARY = "SIGKILL of the whole worker (its container, or process group)"
NEEDS = ("kill",)
# It acts on the whole worker: it can land on a message held at at=received.
LANDS_WHILE_HELD = True


def start(ctx: FaultContext) -> FaultRecord:
    ctx.backend.signal_worker(ctx.worker, "SIGKILL")
    died = ctx.backend.wait_exit(ctx.worker, timeout_s=10)
    return record(NAME, ctx, "SIGKILL", died, ends_execution=True)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    if not ctx.settings.restart or not fault.landed:
        return None
    ctx.backend.restart_worker(ctx.worker)
    return healed(fault, "restart", "started again after the kill")
