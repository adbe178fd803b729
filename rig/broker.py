"""The rig's side of the Redis broker: arming checkpoints, reading their
reports, and telling whether the queues have drained.

Key names match exam_app/users/checkpoints.py, which the tasks run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from exam_app.users.checkpoints import REPORTS_KEY, armed_key, release_key

QUEUES = ("celery", "long")
# An armed checkpoint parks its task at most this long waiting for its fault.
PARK_S = 20.0
# kombu's Redis transport keeps delivered-but-unacked messages here.
UNACKED_INDEX = "unacked_index"


@dataclass(frozen=True)
class CheckpointReport:
    task_id: str
    attempt: int
    hostname: str
    pid: int
    point: str
    reported_at: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Broker:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=10)

    def reset(self) -> None:
        """Empty queues, unacked messages and checkpoint keys: a scenario starts clean."""
        self.client.flushdb()

    def arm(self, point: str, times: int = 1) -> None:
        self.client.set(armed_key(point), times)

    def wait_checkpoint(self, timeout_s: float) -> CheckpointReport | None:
        popped = self.client.blpop([REPORTS_KEY], timeout=timeout_s)
        if popped is None:
            return None
        return CheckpointReport(**json.loads(popped[1]))

    def release(self, report: CheckpointReport) -> None:
        self.client.rpush(release_key(report.task_id, report.attempt), "go")

    def pending_messages(self) -> int:
        """Messages still queued plus those delivered but not acknowledged."""
        queued = sum(self.client.llen(queue) for queue in QUEUES)
        return queued + self.client.zcard(UNACKED_INDEX)

    def close(self) -> None:
        self.client.close()


def with_db(url: str, db: int) -> str:
    """The same Redis server, database `db`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))
