"""Groups: each unit is --group-size calls of the task sent at once as one
group (key-0.g0, key-0.g1, ...), no callback. Celery sends a group's members
as separate messages that carry the group's id; a member lost or delivered
again is that member's fate alone: the others run once, whatever it does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rig.history import SENT
from rig.schema import setting

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "group"
SUMMARY = "--tasks groups of --group-size calls of --task, each member with its own key"


@dataclass(frozen=True)
class Parameters:
    group_size: int = setting(2, "group workload: calls per group", minimum=1)


def send(run: RunContext, index: int) -> None:
    from celery import group  # here: the command line starts without Celery

    calls = [run.target.call(index, f"g{n}") for n in range(run.settings.group_size)]
    members = [
        run.crew.app.signature(run.target.task_name, args=args, kwargs=kwargs, immutable=True)
        for _, args, kwargs in calls
    ]
    result = group(members).apply_async()
    for (key, _, _), member in zip(calls, result.results, strict=True):
        run.history.add(SENT, task_id=member.id, task=run.target.task_name, business_key=key)


def describe(settings: Any) -> str:
    return f"group of {settings.group_size}"
