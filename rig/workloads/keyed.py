"""The task under test, --tasks times, each call with its own business key
(rig.target.Target.call): the key is what the checker counts rows by."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.history import SENT

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "keyed"
SUMMARY = "--tasks calls of --task, each with its own business key"


def send(run: RunContext, index: int) -> None:
    key, args, kwargs = run.target.call(index)
    result = run.crew.app.send_task(run.target.task_name, args=args, kwargs=kwargs)
    run.history.add(SENT, task_id=result.id, task=run.target.task_name, business_key=key)
