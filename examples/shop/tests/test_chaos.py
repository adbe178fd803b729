"""Chaos tests for the shop's payment tasks.

They use the rig's pytest plugin (the `celery_chaos` marker and fixture), which is
registered when the rig is installed. Run them with `pytest` from examples/shop.
"""

from typing import Any

import pytest

CHARGE_EFFECTS = "SELECT order_id, count(*) FROM payments_payment GROUP BY order_id"
RECEIPT_EFFECTS = "SELECT order_id, count(*) FROM payments_receipt GROUP BY order_id"


@pytest.mark.celery_chaos(app="shop.celery:app", fault="container", at="after_commit", acks="late")
def test_charge_is_not_safe_against_a_worker_kill(celery_chaos: Any) -> None:
    result = celery_chaos.run(
        "payments.tasks.charge",
        kwargs={"order_id": "{key}"},
        tasks=2,
        effects=CHARGE_EFFECTS,
    )
    # The kill lands after the payment committed and before the late ack: the task runs again.
    assert result.counts.duplicated_work >= 1, result.explain()
    assert result.counts.duplicate_rows >= 1, result.explain()


@pytest.mark.celery_chaos(app="shop.celery:app", fault="container", at="after_commit", acks="late")
def test_charge_once_survives_the_same_kill(celery_chaos: Any) -> None:
    result = celery_chaos.run(
        "payments.tasks.charge_once",
        kwargs={"order_id": "{key}"},
        tasks=2,
        effects=RECEIPT_EFFECTS,
    )
    # Same kill, same redelivery: the task did run twice, the unique constraint made it harmless.
    assert result.counts.executions >= 2, result.explain()
    assert result.counts.duplicate_rows == 0, result.explain()
    assert result.counts.missing_rows == 0, result.explain()


@pytest.mark.celery_chaos(app="shop.celery:app", fault="container", at="after_commit", acks="early")
def test_charge_with_early_ack_never_runs_twice(celery_chaos: Any) -> None:
    result = celery_chaos.run(
        "payments.tasks.charge",
        kwargs={"order_id": "{key}"},
        tasks=2,
        effects=CHARGE_EFFECTS,
    )
    # An early ack loses a killed task, it never repeats one. Here the payment committed
    # before the kill, so nothing is missing either.
    assert result.counts.redelivered == 0, result.explain()
    assert result.counts.duplicate_rows == 0, result.explain()
    assert result.counts.missing_rows == 0, result.explain()


@pytest.mark.celery_chaos(
    app="shop.celery:app", fault="container", at="after_commit", acks="late", transport="rabbitmq"
)
def test_charge_once_survives_the_same_kill_on_rabbitmq(celery_chaos: Any) -> None:
    result = celery_chaos.run(
        "payments.tasks.charge_once",
        kwargs={"order_id": "{key}"},
        tasks=2,
        effects=RECEIPT_EFFECTS,
    )
    # RabbitMQ requeues the killed worker's delivery as its connection drops: the
    # task runs again at once, and the constraint still keeps one receipt per order.
    assert result.counts.redelivered >= 1, result.explain()
    assert result.counts.duplicate_rows == 0, result.explain()
    assert result.counts.missing_rows == 0, result.explain()


@pytest.mark.celery_chaos(app="shop.celery:app", fault="container", at="after_http", acks="late")
def test_a_kill_after_the_providers_answer_charges_the_card_twice(celery_chaos: Any) -> None:
    result = celery_chaos.run("payments.tasks.charge_card", kwargs={"order_id": "{key}"}, tasks=2)
    # The provider answered, the worker died before the payment was recorded: the
    # task ran again and called the provider again. One order, two charges.
    assert result.counts.external_calls == 3, result.explain()
    assert result.counts.duplicate_external_effects == 1, result.explain()


@pytest.mark.celery_chaos(app="shop.celery:app", fault="container", at="after_http", acks="late")
def test_an_idempotency_key_makes_the_second_call_harmless(celery_chaos: Any) -> None:
    result = celery_chaos.run(
        "payments.tasks.charge_card_once", kwargs={"order_id": "{key}"}, tasks=2
    )
    # The same kill and the same second call; the provider (the rig's sink, as a
    # provider does) answered it from the key with the first charge.
    assert result.counts.external_calls == 3, result.explain()
    assert result.counts.duplicate_external_effects == 0, result.explain()
