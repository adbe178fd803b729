"""The producer side: each unit is view-like Django code, run by the rig in a
process of its own, that saves an order in a transaction and sends the task
that fulfils it, inside the transaction or on its commit (`publish`). The
process runs on the rig's database and the crew's broker, never the
project's; a fault can land at its checkpoints `before_commit` (the stall
fault holds the transaction open there) and `before_publish` (Celery's
before_task_publish: with on_commit, the order is committed by then; the
sender-kill fault kills the producer there).

Built in for exam_app (exam_app.users.producer, the task fulfil_order); a
project's own producers are the next step."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rig.checkpoints import BEFORE_PUBLISH
from rig.errors import BadInput
from rig.history import SENT
from rig.schema import setting

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "producer"
SUMMARY = "an order saved in a transaction and its task sent (--publish), by Django code"
POINTS = ("before_commit", BEFORE_PUBLISH)  # the producer's, on top of the tasks' own
TASK = "fulfil_order"
FUNCTIONS = "exam_app.users.producer"


@dataclass(frozen=True)
class Parameters:
    publish: Literal["in_transaction", "on_commit"] = setting(
        "on_commit",
        "producer workload: send the task inside the order's transaction, or from "
        "transaction.on_commit",
    )


def validate(settings: Any) -> None:
    if settings.app or settings.task != TASK:
        raise BadInput(
            f"workload=producer runs the built-in producer: it needs task={TASK} and no --app"
        )


def send(run: RunContext, index: int) -> None:
    key, _, kwargs = run.target.call(index)
    task_id = str(uuid.uuid4())
    run.history.add(SENT, task_id=task_id, task=run.target.task_name, business_key=key)
    function = f"{FUNCTIONS}:{run.settings.publish}"
    run.start_producer(task_id, ["produce", function, key, task_id, json.dumps(kwargs)])


def describe(settings: Any) -> str:
    return f"sent {settings.publish.replace('_', ' ')}"
