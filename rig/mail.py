"""The rig's mail backend (rig.project_settings sets it): Django's in-memory
one, so nothing leaves the process, plus a count of what each execution sent:
one record per message (its recipients and subject), then the point
`after_email`, where a fault lands between the email and whatever the task
commits next."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.mail.backends import locmem

from rig.checkpoints import checkpoint
from rig.outbound import AFTER_EMAIL, EMAILS, record


class EmailBackend(locmem.EmailBackend):
    def send_messages(self, messages: Sequence[Any]) -> int:
        sent = 0
        for message in messages:
            sent += super().send_messages([message])
            record(EMAILS, {"to": sorted(message.recipients()), "subject": str(message.subject)})
            checkpoint(AFTER_EMAIL)
        return sent
