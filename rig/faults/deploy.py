"""A rolling deploy: the term fault (SIGTERM, SIGKILL after --grace), then the
worker starts again, as its new version would. The heal is the restart."""

from __future__ import annotations

from dataclasses import replace

from rig.faults import FaultContext, FaultRecord, Heal, healed, term

NAME = "deploy"
SUMMARY = "term, then the worker starts again (a rolling restart)"
NEEDS = term.NEEDS
describe = term.describe


def start(ctx: FaultContext) -> FaultRecord:
    return replace(term.start(ctx), name=NAME)


def heal(ctx: FaultContext, fault: FaultRecord) -> Heal | None:
    ctx.backend.restart_worker(ctx.worker)
    return healed(fault, "start", "the worker's new version starts")
