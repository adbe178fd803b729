from django.db import models


class Payment(models.Model):
    """One row per charge: a task that runs twice charges twice."""

    order_id = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
