"""A Celery app with no Django at all: the rig still runs it, with task_start
and task_end as its only automatic checkpoints."""

from celery import Celery

app = Celery("plain")


@app.task(name="plain.add")
def add(x: int, y: int) -> int:
    return x + y
