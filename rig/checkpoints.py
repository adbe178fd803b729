"""Named points inside a task where the rig lands a fault; the worker's side.

The rig's worker wrapper (rig.agent) passes five points on its own in every
execution (AUTOMATIC); a user may name more inside their code with
`from rig import checkpoint; checkpoint("name")`, a no-op unless armed.

A point is armed when the rig sets the control store's key ``rig:armed:<point>``
to the number of executions that should park there. An armed point reports
itself on the list ``rig:checkpoints`` and parks until the rig pushes to its
release key or the park time passes, so the fault lands inside the window
every time. A task that asks to be retried passes RETRIED once its retry
message is out. One more point, RECEIVED, is passed in the worker's main process
when it reserves a message it has not started (a prefetched or an ETA one):
it reports but never parks, since it runs on the consumer's own thread.
Light on purpose: it runs in every pool process of the user's workers and
imports nothing of Django or Celery.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from rig import contract

if TYPE_CHECKING:  # imported where used: `from rig import checkpoint` stays light
    import redis

AUTOMATIC = ("task_start", "before_write", "in_transaction", "after_commit", "task_end")
WITHOUT_DJANGO = ("task_start", "task_end")  # no database writes to watch
# A message reserved, not started, its worker waiting again: attempt 0, the main process.
RECEIVED = "received"
# A task that called self.retry: its retry message is published, the original
# not yet acknowledged (Celery's task_retry signal, in the pool process).
RETRIED = "after_retry"
# A step of a chain whose body returned: Celery has published the chain's next
# step, and (late ack) not acknowledged this one (celery/app/trace.py).
NEXT_PUBLISHED = "next_published"
# A producer's task is about to go to the broker (Celery's before_task_publish):
# with on_commit, the order is committed by then.
BEFORE_PUBLISH = "before_publish"
PRODUCER = "producer"  # the hostname of a producer's checkpoints (rig.workloads.producer)
REPORTS_KEY = "rig:checkpoints"
LEDGER_KEY = "rig:ledger"  # hash: "<task id>:<attempt>" -> one execution's record (JSON)
READY_KEY = "rig:ready"  # list: node names of workers whose consumer is up (announce_ready)


def armed_key(point: str) -> str:
    return f"rig:armed:{point}"


def release_key(task_id: str, attempt: int) -> str:
    return f"rig:release:{task_id}:{attempt}"


def published_key(task_id: str) -> str:
    """The task ids a producer of task_id published, each as the broker took it."""
    return f"rig:published:{task_id}"


def attempts_key(task_id: str) -> str:
    return f"rig:attempts:{task_id}"


@dataclass(frozen=True)
class Execution:
    """Who is running: set by rig.agent for the duration of one task."""

    task_id: str
    attempt: int
    hostname: str


_current = threading.local()  # the threads pool runs one execution per thread


def current() -> Execution | None:
    return getattr(_current, "execution", None)


def set_current(execution: Execution | None) -> None:
    _current.execution = execution


@cache
def control() -> redis.Redis | None:
    """The control store, or None outside a rig-run worker (checkpoints are no-ops)."""
    url = os.environ.get(contract.CONTROL_URL)
    if not url:
        return None
    # redis-py's pool notices a fork and reconnects, so one client per process is
    # safe. A read waits out a whole park (BLPOP); a connection that cannot be
    # made gives up at once, so an absent store costs the task next to nothing.
    import redis

    return redis.Redis.from_url(url, socket_timeout=park_seconds() + 10, socket_connect_timeout=1)


def park_seconds() -> float:
    return float(os.environ.get(contract.PARK_SECONDS, contract.PARK_S))


def checkpoint(point: str) -> None:
    """Park here if the rig armed this point; otherwise return at once."""
    execution = current()
    if execution is not None:
        _on_the_control_store(lambda client: _park_if_armed(client, point, execution))


def announce_ready(hostname: str) -> None:
    """This worker's consumer is up (Celery's worker_ready, sent once, as its
    event loop starts): the crew's start waits on this list instead of pinging."""

    def announce(client: redis.Redis) -> None:
        client.rpush(READY_KEY, hostname)

    _on_the_control_store(announce)


def received(task_id: str, hostname: str) -> None:
    """Report the point RECEIVED if armed (never park: the consumer would stop)."""

    def report_if_armed(client: redis.Redis) -> None:
        if _take_arming(client, RECEIVED):
            _report(client, RECEIVED, Execution(task_id, 0, hostname))

    _on_the_control_store(report_if_armed)


def _on_the_control_store(action: Callable[[redis.Redis], None]) -> None:
    """Act on the control store, outside a rig-run process not at all; a store
    that is away never breaks the task or the worker that passed the point."""
    client = control()
    if client is None:
        return
    import redis

    try:
        action(client)
    except redis.RedisError:
        pass


def _park_if_armed(client: redis.Redis, point: str, execution: Execution) -> None:
    if _take_arming(client, point):
        _report(client, point, execution)
        client.blpop([release_key(execution.task_id, execution.attempt)], timeout=park_seconds())


def _take_arming(client: redis.Redis, point: str) -> bool:
    """One of the arming's executions: exactly as many as the rig asked for.
    DECR only when the key exists, so unarmed points leave no keys behind."""
    key = armed_key(point)
    return bool(client.exists(key)) and int(client.decr(key)) >= 0


def _report(client: redis.Redis, point: str, execution: Execution) -> None:
    report = {
        "task_id": execution.task_id,
        "attempt": execution.attempt,
        "hostname": execution.hostname,
        "pid": os.getpid(),
        "point": point,
        "reported_at": time.time(),
    }
    client.rpush(REPORTS_KEY, json.dumps(report))
