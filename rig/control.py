"""The rig's side of the control store: arming checkpoints, reading their
reports and the write ledger. Key names are rig.checkpoints', which every
worker runs (through rig.agent).

The control store is a Redis of its own, not the broker: a broker restart or
a partition from the broker leaves the ledger and the checkpoints alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rig import contract
from rig.checkpoints import (
    LEDGER_KEY,
    READY_KEY,
    REPORTS_KEY,
    armed_key,
    published_key,
    release_key,
)

PARK_S = contract.PARK_S  # an armed checkpoint parks its task at most this long
WAIT_LIMIT_S = 60.0  # no wait for a checkpoint is longer


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


class Control:
    def __init__(self, url: str) -> None:
        self.url = url
        import redis  # here: the command line parses and checks settings without it

        # Longer than any wait for a checkpoint: a blocking read ends on its own timeout.
        self.client = redis.Redis.from_url(
            url, socket_timeout=WAIT_LIMIT_S, socket_connect_timeout=5
        )

    def reset(self) -> None:
        """No armed point, report, attempt count or ledger record left from before."""
        self.client.flushdb()

    def wait_ready(self, timeout_s: float) -> set[str]:
        """The node names of workers that announced their consumer up since the
        last call (rig.checkpoints.announce_ready), waiting up to timeout_s for one."""
        popped = self.client.blpop([READY_KEY], timeout=timeout_s)
        if popped is None:
            return set()
        with self.client.pipeline() as pipe:  # the rest, taken at once
            pipe.lrange(READY_KEY, 0, -1)
            pipe.delete(READY_KEY)
            rest, _ = pipe.execute()
        return {bytes(name).decode() for name in (popped[1], *rest)}

    def arm(self, point: str, times: int = 1) -> None:
        self.client.set(armed_key(point), times)

    def wait_checkpoint(self, point: str, timeout_s: float) -> CheckpointReport | None:
        """The next execution parked at `point`; any other parked report (a late one
        of an earlier arming) is let go."""
        deadline = time.time() + timeout_s
        while (left := deadline - time.time()) > 0:
            # Each read ends well before the socket's own timeout.
            popped = self.client.blpop(
                [REPORTS_KEY], timeout=max(min(left, WAIT_LIMIT_S - 5), 0.01)
            )
            if popped is None:
                continue  # the deadline, not one read, ends the wait
            report = CheckpointReport(**json.loads(popped[1]))
            if report.point == point:
                return report
            self.release(report)
        return None

    def disarm(self, point: str) -> None:
        """No more executions park at `point`; any that did meanwhile are let go."""
        self.client.delete(armed_key(point))
        while isinstance(raw := self.client.lpop(REPORTS_KEY), (bytes, str)):
            self.release(CheckpointReport(**json.loads(raw)))

    def release(self, report: CheckpointReport) -> None:
        self.client.rpush(release_key(report.task_id, report.attempt), "go")

    def ledger(self) -> list[dict[str, Any]]:
        """Every execution's record, in the order they started."""
        records = [json.loads(raw) for raw in self.client.hvals(LEDGER_KEY)]
        return sorted(records, key=lambda record: (record["started_at"], record["attempt"]))

    def published(self, task_id: str) -> list[str]:
        """The task ids the producer of task_id published, as it went (rig.agent.produce)."""
        raws = self.client.lrange(published_key(task_id), 0, -1)
        return [raw.decode() if isinstance(raw, bytes) else raw for raw in raws]

    def close(self) -> None:
        self.client.close()


def with_db(url: str, db: int) -> str:
    """The same Redis server, database `db` (a crew's corner of the control store,
    and of a Redis broker)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))
