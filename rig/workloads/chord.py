"""Chords: each unit is --chord-size header calls of the task (key-0.h0, ...)
and one callback call of it (key-0.callback), run once every header's result
is in the result store (the rig's own Redis: result_backend=redis).

A header that runs twice (delivered again after its worker died) must count
once: Celery 5.7's Redis backend keeps the task ids it has counted and a
"done" mark once the callback went out (celery/backends/redis.py,
CHORD_PART_RETURN_LUA); older backends pushed every result, so a repeat
could complete the chord early or fire its callback twice. The callback's
executions say which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rig.errors import BadInput
from rig.history import SENT
from rig.schema import setting

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "chord"
SUMMARY = "--tasks chords of --chord-size header calls of --task and one callback call of it"
CALLBACK = "callback"


@dataclass(frozen=True)
class Parameters:
    chord_size: int = setting(2, "chord workload: header calls per chord", minimum=1)


def validate(settings: Any) -> None:
    if settings.result_backend == "none":
        raise BadInput(
            "workload=chord needs result_backend=redis: a chord's headers meet in a result store"
        )


def send(run: RunContext, index: int) -> None:
    from celery import chord  # here: the command line starts without Celery

    parts = [f"h{n}" for n in range(run.settings.chord_size)] + [CALLBACK]
    calls = [run.target.call(index, part) for part in parts]
    *headers, callback = [
        run.crew.app.signature(run.target.task_name, args=args, kwargs=kwargs, immutable=True)
        for _, args, kwargs in calls
    ]
    result = chord(headers)(callback)
    ids = [header.id for header in result.parent.results] + [result.id]
    for (key, _, _), task_id in zip(calls, ids, strict=True):
        run.history.add(SENT, task_id=task_id, task=run.target.task_name, business_key=key)


def describe(settings: Any) -> str:
    return f"chord of {settings.chord_size}"
