"""The seed's attempt ledger (the reproduction stack's two tasks): one row per
execution, committed on its own. Chaos runs keep theirs in the rig's control
store instead (rig.agent), for any project.

Callers write the ledger outside any transaction.atomic() block, so each
call commits at once and survives a SIGKILL of the worker that follows.
"""

from __future__ import annotations

import os

from django.db import IntegrityError, transaction
from django.utils import timezone

from exam_app.users.models import Attempt


def begin(
    task_id: str, task_name: str, business_key: str, hostname: str, redelivered: bool
) -> Attempt:
    """Record that an execution started; its number counts earlier executions of the task."""
    while True:
        attempt_number = Attempt.objects.filter(task_id=task_id).count() + 1
        try:
            # The savepoint keeps a lost race from spoiling an outer transaction.
            with transaction.atomic():
                return Attempt.objects.create(
                    task_id=task_id,
                    task_name=task_name,
                    business_key=business_key,
                    hostname=hostname,
                    pid=os.getpid(),
                    attempt=attempt_number,
                    redelivered=redelivered,
                    started_at=timezone.now(),
                )
        except IntegrityError:
            # Another execution of the same task took this number first
            # (a concurrent redelivery): take the next one.
            continue


def mark_written(attempt: Attempt) -> None:
    """Record that this execution's side effect is committed."""
    attempt.written_at = timezone.now()
    attempt.save(update_fields=["written_at"])


def finish(attempt: Attempt) -> None:
    attempt.finished_at = timezone.now()
    attempt.save(update_fields=["finished_at"])
