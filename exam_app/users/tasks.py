"""Tasks of the reproduction.

early_acknowledge / late_acknowledge are the seed's two tasks: a slow network
retrieval, acknowledged before or after it runs, each with a ledger row of
its own for the reproduction stack. The record tasks write a database row
keyed by a business key, naively or idempotently: plain Django code, which
the chaos rig runs under its worker wrapper (rig.agent) like any project's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests
from celery import Task, shared_task
from django.core.mail import send_mail
from django.db import models, transaction

from exam_app.users import ledger
from exam_app.users.models import (
    Attempt,
    IdempotentRecord,
    NaiveRecord,
    Order,
    UnconstrainedRecord,
)

# A payment provider's API. Under the rig no call leaves the worker: its sink
# answers (rig.outbound); ".invalid" never resolves anywhere else either.
PAYMENTS_URL = "https://payments.example.invalid/v1/charges"


def retrieve(seconds: float) -> str:
    """Stand-in for a slow network call; returns the payload it "fetched"."""
    time.sleep(seconds)
    return f"payload after {seconds:.2f}s"


def _begin(task: Task, business_key: str) -> Attempt:
    request = task.request
    return ledger.begin(
        task_id=request.id,
        task_name=task.name,
        business_key=business_key,
        hostname=request.hostname or "",
        redelivered=bool((request.delivery_info or {}).get("redelivered")),
    )


def _retrieval(task: Task, seconds: float, key: str) -> None:
    attempt = _begin(task, key)
    retrieve(seconds)
    ledger.finish(attempt)


@shared_task(bind=True, acks_late=False, name="exam_app.users.tasks.early_acknowledge")
def early_acknowledge(self: Task, seconds: float = 5.0, key: str = "") -> None:
    _retrieval(self, seconds, key)


@shared_task(bind=True, acks_late=True, name="exam_app.users.tasks.late_acknowledge")
def late_acknowledge(self: Task, seconds: float = 5.0, key: str = "") -> None:
    _retrieval(self, seconds, key)


def _write_record(write: Callable[[], object], allocate_mb: int = 0) -> None:
    """Plain Django code: the rig passes its checkpoints (before_write,
    in_transaction, after_commit) and keeps its ledger with no help from here.
    allocate_mb makes the task hold that much memory first (filled, so the
    pages are really used), for the memory-limit fault."""
    ballast = bytearray(b"\x01") * (allocate_mb << 20)  # noqa: F841 - held on purpose
    with transaction.atomic():
        write()


# The record tasks name no acks options of their own: the settings
# (CELERY_TASK_ACKS_LATE, ... in the reproduction stack) or the rig's
# overrides decide, so one task serves every cell of the matrix.


@shared_task(bind=True, name="exam_app.users.tasks.create_record")
def create_record(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Naive: a second run inserts a second row. The payload is fetched before
    the transaction opens, so a slow fetch holds no lock (SQLite takes its write
    lock when the transaction begins)."""
    _create_naive(self, key, seconds, allocate_mb)


def _create_naive(task: Task, key: str, seconds: float, allocate_mb: int) -> None:
    payload = retrieve(seconds)
    _write_record(
        lambda: NaiveRecord.objects.create(
            business_key=key, payload=payload, task_id=task.request.id
        ),
        allocate_mb,
    )


@shared_task(bind=True, name="exam_app.users.tasks.retry_then_create")
def retry_then_create(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Asks to be retried on its first run (a failed call, say), as user code
    does: self.retry with a 1 s countdown; the retry writes naively. Task.retry
    publishes the retry message before the original is acknowledged."""
    if self.request.retries == 0:
        raise self.retry(countdown=1, max_retries=3)
    _create_naive(self, key, seconds, allocate_mb)


@shared_task(
    bind=True,
    name="exam_app.users.tasks.autoretry_then_create",
    autoretry_for=(ConnectionError,),
    retry_kwargs={"max_retries": 3, "countdown": 1},
)
def autoretry_then_create(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Its first run fails with ConnectionError (a provider that did not
    answer); Celery's autoretry_for retries it (Task.retry, as self.retry
    does, with a 1 s countdown); the retry writes naively."""
    if self.request.retries == 0:
        raise ConnectionError("the provider did not answer")
    _create_naive(self, key, seconds, allocate_mb)


@shared_task(bind=True, name="exam_app.users.tasks.fulfil_order")
def fulfil_order(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Sent by the producer for the order it saves (exam_app.users.producer): looks
    the order up (Order.DoesNotExist if it runs before the producer's commit),
    then writes its fulfilment naively."""
    Order.objects.get(business_key=key)
    _create_naive(self, key, seconds, allocate_mb)


@shared_task(bind=True, name="exam_app.users.tasks.get_or_create_record")
def get_or_create_record(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Idempotent: get_or_create on a key with a database UniqueConstraint."""
    write = lambda: _get_or_create(IdempotentRecord, self, key, seconds)  # noqa: E731
    _write_record(write, allocate_mb)


@shared_task(bind=True, name="exam_app.users.tasks.get_or_create_unconstrained")
def get_or_create_unconstrained(
    self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0
) -> None:
    """get_or_create without a unique constraint: two concurrent runs can both insert."""
    write = lambda: _get_or_create(UnconstrainedRecord, self, key, seconds)  # noqa: E731
    _write_record(write, allocate_mb)


def _get_or_create(model: type[models.Model], task: Task, key: str, seconds: float) -> None:
    # A callable default is evaluated after the lookup missed and before the
    # insert, so the slow retrieval sits inside get_or_create's race window,
    # as it does when the payload is fetched only for new keys.
    model.objects.get_or_create(
        business_key=key,
        defaults={"payload": lambda: retrieve(seconds), "task_id": task.request.id},
    )


# The external effects: a charge at a payment provider, a receipt by email,
# each then recorded in the database, naively. A worker that dies between the
# effect and the commit leaves the effect done and unrecorded: a late-ack
# redelivery does it again.


def _charge(task: Task, key: str, idempotency_key: str, seconds: float) -> None:
    """The charge, then `seconds` of further work before its record commits."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    response = requests.post(PAYMENTS_URL, json={"order": key, "amount": 1000}, headers=headers)
    response.raise_for_status()
    _create_naive(task, key, seconds, 0)


@shared_task(bind=True, name="exam_app.users.tasks.charge")
def charge(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Charges the order with no idempotency key: a second run is a second charge."""
    _charge(self, key, idempotency_key="", seconds=seconds)


@shared_task(bind=True, name="exam_app.users.tasks.charge_with_key")
def charge_with_key(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Charges with the order's key as the Idempotency-Key: the provider answers a
    second run's charge with the first one's and charges once."""
    _charge(self, key, idempotency_key=f"charge-{key}", seconds=seconds)


@shared_task(bind=True, name="exam_app.users.tasks.send_receipt")
def send_receipt(self: Task, key: str, seconds: float = 0.0, allocate_mb: int = 0) -> None:
    """Emails the customer a receipt, then records it (`seconds` of work before
    the record commits): a second run, a second email."""
    send_mail(f"Your receipt for {key}", "Thank you.", None, [f"{key}@example.invalid"])
    _create_naive(self, key, seconds, 0)


# A periodic job, sent by celery beat (the rig runs beat with this entry for
# its beat workload): every run emails the daily digest once more.


@shared_task(bind=True, name="exam_app.users.tasks.send_digest")
def send_digest(self: Task, seconds: float = 0.0) -> None:
    """Emails the team its digest, after `seconds` of gathering it."""
    retrieve(seconds)
    send_mail("Daily digest", "All quiet.", None, ["team@example.invalid"])
