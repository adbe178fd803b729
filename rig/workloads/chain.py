"""Chains: each unit is a chain of two calls of the task (a, then b), each step
with a business key of its own (key-0.a, key-0.b).

Celery publishes a chain's next step when a step's body returns, before a
late-acknowledged step is acknowledged (celery/app/trace.py: the chain is
applied, then the result stored, then task_postrun). A step lost after that
point and delivered again publishes its next step again, with the same task
id: the rest of the chain runs twice (celery#5006, after a warm shutdown).
The point `next_published` is that window; with two steps only the first
step passes it, so the fault lands on it by construction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rig.history import SENT

if TYPE_CHECKING:
    from celery.result import AsyncResult

    from rig.plans import RunContext

NAME = "chain"
SUMMARY = "--tasks chains of two calls of --task (a, then b), each step with its own key"
STEPS = ("a", "b")


def send(run: RunContext, index: int) -> None:
    from celery import chain  # here: the command line starts without Celery

    calls = [run.target.call(index, step) for step in STEPS]
    signatures = [
        run.crew.app.signature(run.target.task_name, args=args, kwargs=kwargs, immutable=True)
        for _, args, kwargs in calls
    ]
    last = chain(*signatures).apply_async()
    for (key, _, _), result in zip(calls, _from_the_first(last), strict=True):
        run.history.add(SENT, task_id=result.id, task=run.target.task_name, business_key=key)


def _from_the_first(last: AsyncResult) -> list[AsyncResult]:
    """A chain's results, first step first (apply_async returns the last one's)."""
    results = [last]
    while results[-1].parent is not None:
        results.append(results[-1].parent)
    return results[::-1]


def describe(settings: Any) -> str:
    return "chain a | b"
