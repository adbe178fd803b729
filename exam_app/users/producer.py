"""The producer side: view-like code that saves an order and sends the task
that fulfils it, the two ways users write it. The rig runs these in a
process of its own (python -m rig.agent produce), on its own database and
broker, and can hold them at `before_commit` (rig.checkpoint).

- in_transaction: delay() inside atomic(); the worker can run the task before
  the commit and not find the order (Django's docs, "Performing actions after
  commit"; Celery's, "Database transactions").
- on_commit: transaction.on_commit(lambda: task.delay(...)); sent only once
  the order is committed (Celery >= 5.4 also has delay_on_commit).
"""

from __future__ import annotations

from django.db import transaction

from exam_app.users.models import Order
from exam_app.users.tasks import fulfil_order
from rig import checkpoint


def in_transaction(key: str, task_id: str, kwargs: dict[str, object]) -> None:
    with transaction.atomic():
        Order.objects.create(business_key=key)
        fulfil_order.apply_async(kwargs=kwargs, task_id=task_id)
        checkpoint("before_commit")


def on_commit(key: str, task_id: str, kwargs: dict[str, object]) -> None:
    with transaction.atomic():
        Order.objects.create(business_key=key)
        send = lambda: fulfil_order.apply_async(kwargs=kwargs, task_id=task_id)  # noqa: E731
        transaction.on_commit(send)
        checkpoint("before_commit")
