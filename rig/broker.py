"""The rig's side of the Redis broker: whether the queues have drained."""

from __future__ import annotations

import redis

QUEUES = ("celery", "long")
# kombu's Redis transport keeps delivered-but-unacked messages here.
UNACKED_INDEX = "unacked_index"


class Broker:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=10)

    def reset(self) -> None:
        """Empty queues and unacked messages: a scenario starts clean."""
        self.client.flushdb()

    def pending_messages(self) -> int:
        """Messages still queued plus those delivered but not acknowledged."""
        queued = sum(self.client.llen(queue) for queue in QUEUES)
        return queued + self.client.zcard(UNACKED_INDEX)

    def close(self) -> None:
        self.client.close()
