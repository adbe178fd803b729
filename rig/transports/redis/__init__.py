"""Redis as the broker (kombu's Redis transport).

Unacknowledged messages live in a sorted set and come back to the queue only
after the visibility timeout, swept by any live consumer (see
../shared/celery-semantics.md): the rig makes the sweep quick so a scenario
settles in seconds. Each crew has a database of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kombu
import redis

from rig.backends.hosts import BrokerNode, DockerHost, LocalHost
from rig.control import with_db
from rig.errors import BrokerDown
from rig.schema import setting
from rig.transports.redis import docker, local

NAME = "redis"
SUMMARY = "Redis, kombu's redis transport (a visibility timeout, no consumer liveness)"
QUEUES = ("celery", "long")
# kombu emulates prefetch for Redis, so worker_disable_prefetch applies (rig.fairness).
EMULATED_PREFETCH = True
# kombu's Redis transport keeps delivered-but-unacked messages here.
UNACKED_INDEX = "unacked_index"
# How often a surviving worker sweeps for unacked messages older than the
# visibility timeout (kombu 5.7 unacked_restore_interval, throttle 1).
RESTORE_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Parameters:
    """The settings only Redis reads (part of rig.settings.Settings)."""

    visibility_timeout: float = setting(
        2.0,
        "seconds after delivery before Redis hands an unacknowledged message to "
        "another worker (broker_transport_options; Redis only)",
        minimum=1,
    )


def describe(settings: Any) -> str:
    """The report's phrase for what this transport was given, or ""."""
    if settings.fault == "none":  # what decides a run with no fault: what outlasts it
        return f"{settings.visibility_timeout:g}s visibility timeout"
    return ""


def on_docker(host: DockerHost, node: str) -> BrokerNode:
    return docker.DockerNode(host, node)


def on_local(host: LocalHost, node: str) -> BrokerNode:
    return local.LocalNode(host, node)


def crew_url(url: str, slot: int) -> str:
    return with_db(url, slot)


def node_wide(settings: Any) -> str:
    return ""  # every setting is the workers' own (broker_transport_options)


def crew_setup(settings: Any) -> dict[str, Any]:
    return {}  # a database of its own is all a crew needs


def celery_settings(settings: Any) -> dict[str, Any]:
    return {
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": RESTORE_INTERVAL_S,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": settings.visibility_timeout,
        }
    }


# Before kombu 5.7 the sweep is not tunable: restore_visible(interval=10) works on
# every tenth call of a 10 s timer (kombu/transport/redis.py MultiChannelPoller).
OLD_KOMBU_SWEEP_S = 100.0


def redelivery_wait_s(settings: Any) -> float:
    """The longest a restore of an unacked message may take after its timeout."""
    tunable = tuple(int(part) for part in kombu.__version__.split(".")[:2]) >= (5, 7)
    return settings.visibility_timeout + (RESTORE_INTERVAL_S if tunable else OLD_KOMBU_SWEEP_S)


def unsupported(settings: Any) -> str | None:
    rabbitmq_only = (
        "queue_type",
        "exchange_type",
        "delivery_limit",
        "consumer_timeout",
        "heartbeat",
    )
    given = [name for name in rabbitmq_only if getattr(settings, name)]
    if given:
        return f"{', '.join(given)}: RabbitMQ's; Redis has a visibility timeout instead"
    return None


class Broker:
    def __init__(self, url: str, admin: Any = None) -> None:  # Redis needs no admin tool
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=10)

    def reset(self, setup: dict[str, Any]) -> None:
        """Empty queues and unacked messages: a scenario starts clean."""
        self.client.flushdb()

    def pending_messages(self) -> int:
        """Messages still queued plus those delivered but not acknowledged."""
        try:
            queued = sum(self.client.llen(queue) for queue in QUEUES)
            return queued + self.client.zcard(UNACKED_INDEX)
        except redis.ConnectionError as error:
            raise BrokerDown(str(error)) from None

    def ready_messages(self) -> int:
        """Messages waiting in the queues (not yet handed to a worker)."""
        return sum(self.client.llen(queue) for queue in QUEUES)

    def consumers_waiting(self) -> int:
        """Workers blocked in BRPOP on this database: Redis answers the next one
        with the next message."""
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return sum(
            1
            for client in self.client.client_list()
            if client.get("cmd") == "brpop"
            and "b" in client.get("flags", "")
            and int(client.get("db", -1)) == db
        )

    def take_back(self) -> Any:
        """Take one queued message off its queue (None if there is none), to put back later."""
        for queue in QUEUES:
            raw = self.client.rpop(queue)
            if raw is not None:
                return queue, raw
        return None

    def put_back(self, taken: Any) -> None:
        queue, raw = taken
        self.client.rpush(queue, raw)  # the head BRPOP takes next

    def dead_lettered(self) -> int:
        return 0  # Redis has no dead-letter queue

    def close(self) -> None:
        self.client.close()
