from django.db import models


class Payment(models.Model):
    """One charge against an order. Nothing stops two payments for the same order."""

    order_id = models.CharField(max_length=64, db_index=True)
    amount_cents = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Payment({self.order_id}, {self.amount_cents})"


class Receipt(models.Model):
    """At most one receipt per order: the database enforces it."""

    order_id = models.CharField(max_length=64)
    amount_cents = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order_id"], name="one_receipt_per_order"),
        ]

    def __str__(self) -> str:
        return f"Receipt({self.order_id}, {self.amount_cents})"
