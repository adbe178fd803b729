"""The task under test, --tasks times, each call with its own business key
(rig.target.Target.call): the key is what the checker counts rows by."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rig.history import SENT

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "keyed"
SUMMARY = "--tasks calls of --task, each with its own business key"


def send(run: RunContext, index: int) -> None:
    send_keyed(run, index)


def send_keyed(run: RunContext, index: int, **options: Any) -> None:
    """The index-th keyed call, with apply_async's options; recorded as SENT."""
    key, args, kwargs = run.target.call(index)
    sent_at = time.time()
    result = run.crew.app.send_task(run.target.task_name, args=args, kwargs=kwargs, **options)
    due = {"due_at": sent_at + options["countdown"]} if options.get("countdown") else {}
    run.history.add(SENT, task_id=result.id, task=run.target.task_name, business_key=key, **due)


def describe(settings: Any) -> str:
    """The report's phrase, where the task's length decides the run (no fault)."""
    return f"{settings.task_seconds:g}s task" if settings.fault == "none" else ""
