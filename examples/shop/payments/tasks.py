import time

import requests
from celery import shared_task
from django.db import transaction

from payments.models import Payment, Receipt


@shared_task
def charge(order_id: str, amount_cents: int = 1000) -> None:
    """Charge an order.

    Not idempotent: every run inserts a new Payment, so a second run charges twice.
    """
    time.sleep(0.2)  # stand-in for the call to the payment provider
    with transaction.atomic():
        Payment.objects.create(order_id=order_id, amount_cents=amount_cents)


@shared_task
def charge_once(order_id: str, amount_cents: int = 1000) -> None:
    """Charge an order at most once.

    Idempotent: the unique constraint on Receipt.order_id plus get_or_create make a
    repeat a no-op.
    """
    time.sleep(0.2)  # stand-in for the call to the payment provider
    Receipt.objects.get_or_create(order_id=order_id, defaults={"amount_cents": amount_cents})


# The payment provider's API. Under the rig the call never leaves the worker:
# the rig's HTTP sink answers it and counts it per execution.
PROVIDER = "https://api.payments.example/v1/charges"


@shared_task
def charge_card(order_id: str, amount_cents: int = 1000) -> None:
    """Charge the card at the provider, then record the payment.

    No idempotency key: a run killed between the provider's answer and the
    commit is run again, and the provider charges the card a second time.
    """
    _charge_card(order_id, amount_cents, headers={})


@shared_task
def charge_card_once(order_id: str, amount_cents: int = 1000) -> None:
    """The same charge, with the order as the provider's Idempotency-Key: a run
    again gets the first charge back instead of a second one."""
    _charge_card(order_id, amount_cents, headers={"Idempotency-Key": f"charge-{order_id}"})


def _charge_card(order_id: str, amount_cents: int, headers: dict[str, str]) -> None:
    response = requests.post(
        PROVIDER, json={"order": order_id, "amount": amount_cents}, headers=headers, timeout=10
    )
    response.raise_for_status()
    with transaction.atomic():
        Payment.objects.create(order_id=order_id, amount_cents=amount_cents)
