"""The models, the ledger and the record tasks' side effects, on a real database."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from exam_app.users import ledger
from exam_app.users.models import Attempt, IdempotentRecord, NaiveRecord, UnconstrainedRecord
from rig.target import BUILTIN_TASKS

pytestmark = pytest.mark.django_db(transaction=True)


def test_ledger_numbers_attempts_and_records_each_step() -> None:
    first = ledger.begin("t1", "create_record", "k", "celery@w1", redelivered=False)
    second = ledger.begin("t1", "create_record", "k", "celery@w2", redelivered=True)
    assert (first.attempt, second.attempt) == (1, 2)
    ledger.mark_written(second)
    ledger.finish(second)
    row = Attempt.objects.get(task_id="t1", attempt=2)
    assert row.redelivered and row.written_at and row.finished_at
    assert Attempt.objects.get(task_id="t1", attempt=1).finished_at is None


def test_ledger_row_survives_the_rollback_of_the_task_transaction() -> None:
    attempt = ledger.begin("t2", "create_record", "k", "celery@w1", redelivered=False)
    with pytest.raises(RuntimeError), transaction.atomic():
        NaiveRecord.objects.create(business_key="k", payload="p", task_id="t2")
        raise RuntimeError("killed inside the transaction")
    assert NaiveRecord.objects.count() == 0
    assert Attempt.objects.filter(pk=attempt.pk).exists()


def test_only_the_idempotent_model_refuses_a_second_row() -> None:
    NaiveRecord.objects.create(business_key="k", payload="p", task_id="a")
    NaiveRecord.objects.create(business_key="k", payload="p", task_id="b")
    UnconstrainedRecord.objects.create(business_key="k", payload="p", task_id="a")
    UnconstrainedRecord.objects.create(business_key="k", payload="p", task_id="b")
    IdempotentRecord.objects.create(business_key="k", payload="p", task_id="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        IdempotentRecord.objects.create(business_key="k", payload="p", task_id="b")
    _, created = IdempotentRecord.objects.get_or_create(business_key="k", defaults={"payload": "x"})
    assert created is False and IdempotentRecord.objects.count() == 1


def test_the_builtin_targets_name_the_models_tables() -> None:
    tables = {kind: table for kind, (_, table) in BUILTIN_TASKS.items()}
    assert tables == {
        "create": NaiveRecord._meta.db_table,
        "get_or_create": IdempotentRecord._meta.db_table,
        "retry_then_create": NaiveRecord._meta.db_table,
        "autoretry_then_create": NaiveRecord._meta.db_table,
        "fulfil_order": NaiveRecord._meta.db_table,
        "charge": NaiveRecord._meta.db_table,
        "charge_with_key": NaiveRecord._meta.db_table,
        "send_receipt": NaiveRecord._meta.db_table,
        "get_or_create_unconstrained": UnconstrainedRecord._meta.db_table,
        "digest": "",  # beat's digest emails and writes no row
    }
