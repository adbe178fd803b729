"""The seed's attempt ledger and the three kinds of side effect the record tasks write."""

from django.db import models


class Attempt(models.Model):
    """One execution of one task: the ground truth for "how many times did it run".

    Written with autocommit outside the task's transaction, so a row survives
    a SIGKILL that rolls the task's own transaction back.
    """

    task_id = models.CharField(max_length=64)
    task_name = models.CharField(max_length=200)
    business_key = models.CharField(max_length=200, blank=True)
    hostname = models.CharField(max_length=200)
    pid = models.IntegerField()
    attempt = models.PositiveIntegerField()
    redelivered = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    written_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task_id", "attempt"], name="one_row_per_attempt")
        ]


class NaiveRecord(models.Model):
    """Written with Model.objects.create: a second run writes a second row."""

    business_key = models.CharField(max_length=200)
    payload = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64)


class IdempotentRecord(models.Model):
    """Written with get_or_create on a key the database keeps unique."""

    business_key = models.CharField(max_length=200)
    payload = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["business_key"], name="one_idempotent_row_per_key")
        ]


class UnconstrainedRecord(models.Model):
    """Written with get_or_create but no unique constraint: two concurrent runs can both insert."""

    business_key = models.CharField(max_length=200)
    payload = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64)


class Order(models.Model):
    """What a producer commits before its task runs (exam_app.users.producer):
    the task looks it up, as a task sent from a view looks up what the view saved."""

    business_key = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["business_key"], name="one_order_per_key")]
