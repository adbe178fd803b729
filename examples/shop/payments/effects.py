"""What the charge tasks leave behind, per order: the rows the rig counts
against the orders it sent (`--effects payments.effects:payments_per_order`)."""

from django.db.models import Count

from payments.models import Payment


def payments_per_order() -> list[tuple[str, int]]:
    rows = Payment.objects.values("order_id").annotate(n=Count("id")).values_list("order_id", "n")
    return list(rows)
