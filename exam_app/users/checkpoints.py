"""Named points inside a task where the chaos rig can inject a fault.

A checkpoint is a no-op unless the rig armed it by setting the Redis key
``rig:armed:<point>`` to the number of executions that should park there.
An armed checkpoint reports itself on the list ``rig:checkpoints`` and parks
until the rig pushes to its release key or RIG_CHECKPOINT_TIMEOUT passes.
The rig kills the worker while it is parked, so the kill lands inside the
window every time.
"""

from __future__ import annotations

import json
import os
import time
from functools import cache

import redis
from django.conf import settings

POINTS = ("before_write", "in_transaction", "after_write")
REPORTS_KEY = "rig:checkpoints"


def armed_key(point: str) -> str:
    return f"rig:armed:{point}"


def release_key(task_id: str, attempt: int) -> str:
    return f"rig:release:{task_id}:{attempt}"


@cache
def _client() -> redis.Redis:
    # redis-py's pool notices a fork and reconnects, so one client per process is safe.
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def checkpoint(point: str, task_id: str, attempt: int, hostname: str) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown checkpoint {point!r}; known: {', '.join(POINTS)}")
    try:
        _park_if_armed(point, task_id, attempt, hostname)
    except redis.RedisError:
        pass  # the broker is away (a broker restart): a checkpoint never breaks its task


def _park_if_armed(point: str, task_id: str, attempt: int, hostname: str) -> None:
    client = _client()
    key = armed_key(point)
    # DECR only when the key exists, so unarmed points leave no keys behind;
    # exactly as many executions park as the rig asked for.
    if not client.exists(key) or client.decr(key) < 0:
        return
    report = {
        "task_id": task_id,
        "attempt": attempt,
        "hostname": hostname,
        "pid": os.getpid(),
        "point": point,
        "reported_at": time.time(),
    }
    client.rpush(REPORTS_KEY, json.dumps(report))
    client.blpop([release_key(task_id, attempt)], timeout=settings.RIG_CHECKPOINT_TIMEOUT)
