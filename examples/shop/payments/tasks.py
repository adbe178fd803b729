import time

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
