"""RabbitMQ as the broker (kombu's pyamqp transport), from Debian's rabbitmq-server.

What differs from Redis, and what the scenarios look at (../shared/celery-semantics.md):
an unacknowledged delivery goes back to its queue the moment its channel or
connection closes (no visibility timeout); a delivery unacknowledged past
`consumer_timeout` closes its channel; quorum queues count deliveries and
drop or dead-letter a message past a `delivery-limit`.

Each crew has a virtual host of its own (rig0 … rig15, made at boot from the
definitions below), so the next crew starts while this one settles. The rig
talks to the node for what AMQP cannot tell: unacknowledged counts, policies
and the consumer timeout, as Erlang expressions evaluated in the node by
erl_call (node.erl_call_args; the backend runs it where the node is: a local
process, or inside its container).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import amqp

from rig.backends.hosts import BrokerNode, DockerHost, LocalHost
from rig.errors import BrokerDown
from rig.schema import setting
from rig.transports.rabbitmq import docker, local
from rig.transports.rabbitmq.node import (
    DEFAULT_CONSUMER_TIMEOUT_MS,
    close_politely,
    connect,
    vhost,
)

NAME = "rabbitmq"
SUMMARY = "RabbitMQ, kombu's pyamqp transport (requeue on connection loss, consumer_timeout)"
QUEUES = ("celery", "long")
# Celery's native delayed delivery (quorum queues on a topic exchange): a message
# waits in these until due, so a crew starting here must not inherit one.
DELAY_QUEUES = tuple(f"celery_delayed_{level}" for level in range(28))
DELAY_EXCHANGES = (*DELAY_QUEUES, "celery_delayed_delivery")
EMULATED_PREFETCH = False  # basic.qos: worker_disable_prefetch does not apply
DEAD_LETTER = "rig.dead-letter"  # an exchange and a queue, where a delivery-limit sends
CHANNEL_TICK_MS = 1000

# A function the backend gives: evaluate an Erlang expression in the rig's node,
# return the resulting term's text.
Admin = Callable[[str], str]
POLICY = "rig-delivery-limit"


@dataclass(frozen=True)
class Parameters:
    """The settings only RabbitMQ reads (part of rig.settings.Settings)."""

    queue_type: Literal["classic", "quorum"] | None = setting(
        None, "RabbitMQ: the queues' type (task_default_queue_type); None: the app's own"
    )
    exchange_type: Literal["direct", "topic"] | None = setting(
        None,
        "RabbitMQ: the default exchange's type (task_default_exchange_type); topic with "
        "quorum queues turns on Celery's native delayed delivery (5.5+); None: the app's own",
    )
    delivery_limit: int = setting(
        0,
        "RabbitMQ quorum queues: how many times a message may come back to the queue "
        "before it is dead-lettered (a delivery-limit policy), 0 for no limit",
        minimum=0,
    )
    heartbeat: float = setting(
        0.0,
        "RabbitMQ: seconds between AMQP heartbeats the workers ask for (broker_heartbeat), "
        "0 for Celery's 120 s (the node's 60 s wins)",
        minimum=0,
    )
    consumer_timeout: float = setting(
        0.0,
        "RabbitMQ: seconds a delivery may stay unacknowledged before the broker closes "
        "its channel (consumer_timeout), 0 for the broker's 30 minutes",
        minimum=0,
    )


def describe(settings: Any) -> str:
    """The report's phrase for what this transport was given, or ""."""
    given = [
        f"{settings.queue_type} queue" if settings.queue_type else "",
        f"{settings.exchange_type} exchange" if settings.exchange_type else "",
        f"delivery-limit {settings.delivery_limit}" if settings.delivery_limit else "",
        f"consumer_timeout {settings.consumer_timeout:g}s" if settings.consumer_timeout else "",
        f"heartbeat {settings.heartbeat:g}s" if settings.heartbeat else "",
    ]
    return ", ".join(part for part in given if part)


def on_docker(host: DockerHost, node: str) -> BrokerNode:
    return docker.DockerNode(host, node)


def on_local(host: LocalHost, node: str) -> BrokerNode:
    return local.LocalNode(host, node)


def crew_url(url: str, slot: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{vhost(slot)}"))


def declared(settings: Any) -> dict[str, str]:
    """How the workers declare their queues and exchange, where given: whoever
    else declares them (the rig's controller) must do it alike, or RabbitMQ
    refuses the second declaration."""
    given = {
        "task_default_queue_type": settings.queue_type,
        "task_default_exchange_type": settings.exchange_type,
    }
    return {name: value for name, value in given.items() if value}


def celery_settings(settings: Any) -> dict[str, Any]:
    conf: dict[str, Any] = declared(settings)
    if settings.heartbeat:
        conf["broker_heartbeat"] = settings.heartbeat
    return conf


def redelivery_wait_s(settings: Any) -> float:
    """A delivery comes back as its channel closes; a frozen consumer's after its
    missed heartbeats (the node's 60 s at most), already within the settle wait."""
    return 0.0


def unsupported(settings: Any) -> str | None:
    if settings.delivery_limit and settings.queue_type != "quorum":
        return "delivery_limit needs queue_type=quorum: classic queues count no deliveries"
    return None


def node_wide(settings: Any) -> str:
    """What the settings change for the whole node, so a run with them takes a
    node no other run shares (Settings.broker_node); "" if nothing."""
    if settings.consumer_timeout:  # one value per node, read as a channel opens
        return "consumer_timeout"
    return ""


def crew_setup(settings: Any) -> dict[str, Any]:
    """What a crew's virtual host is set up with before its workers start."""
    return {
        "declared": declared(settings),  # the controller's app declares alike
        "delivery_limit": settings.delivery_limit,
        "consumer_timeout_ms": int(settings.consumer_timeout * 1000) or DEFAULT_CONSUMER_TIMEOUT_MS,
    }


class Broker:
    """The rig's side of one crew's virtual host."""

    def __init__(self, url: str, admin: Admin) -> None:
        self.url = url
        self.admin = admin
        self.vhost = urlsplit(url).path.lstrip("/")

    def reset(self, setup: dict[str, Any]) -> None:
        """Start clean: no queues of an earlier crew (a classic one would refuse
        a quorum declaration), the dead-letter queue empty, the policy and the
        consumer timeout this crew asks for."""
        connection = connect(self.url)
        try:
            channel = connection.channel()
            for queue in (*QUEUES, DEAD_LETTER, *DELAY_QUEUES):
                channel.queue_delete(queue)
            for exchange in (*QUEUES, *DELAY_EXCHANGES):  # each may come back of another type
                channel.exchange_delete(exchange)
            channel.exchange_declare(DEAD_LETTER, "fanout", durable=True, auto_delete=False)
            channel.queue_declare(DEAD_LETTER, durable=True, auto_delete=False)
            channel.queue_bind(DEAD_LETTER, DEAD_LETTER)
        finally:
            close_politely(connection)
        self._apply_policy(setup["delivery_limit"])
        self._set_consumer_timeout(setup["consumer_timeout_ms"])

    def _apply_policy(self, delivery_limit: int) -> None:
        """What `rabbitmqctl set_policy` and `clear_policy` call in the node (a
        policy already gone is no error)."""
        if not delivery_limit:
            self.admin(
                f'rabbit_policy:delete({_binary(self.vhost)}, {_binary(POLICY)}, <<"rig">>).'
            )
            return
        definition = {"delivery-limit": delivery_limit, "dead-letter-exchange": DEAD_LETTER}
        pattern = "^(" + "|".join(QUEUES) + ")$"
        arguments = [self.vhost, POLICY, pattern, json.dumps(definition)]
        self.admin(
            f"ok = rabbit_policy:parse_set({', '.join(map(_binary, arguments))}, "
            '0, <<"queues">>, <<"rig">>).'
        )

    def _set_consumer_timeout(self, milliseconds: int) -> None:
        # One value for the whole node (3.10 has no per-queue timeout); a channel
        # reads it as it opens, so crews already running keep theirs. A channel
        # checks it on its tick, once a minute by default: every second here, so
        # a short timeout acts in about a second, as a long one would in a minute.
        self.admin(
            f"application:set_env(rabbit, consumer_timeout, {milliseconds}), "
            f"application:set_env(rabbit, channel_tick_interval, {CHANNEL_TICK_MS})."
        )

    def pending_messages(self) -> int:
        """Messages still queued plus those delivered but not acknowledged. AMQP
        tells the first; only when none is queued is the node asked for the
        unacknowledged ones, from the queues themselves (as `rabbitmqctl
        list_queues` does), never from sampled statistics."""
        ready = self._ready()
        if ready:
            return ready
        names = ", ".join(map(_binary, QUEUES))
        return int(
            self.admin(
                "lists:sum([R + U || [{name, {resource, _, queue, N}}, {messages_ready, R}, "
                "{messages_unacknowledged, U}] <- rabbit_amqqueue:info_all("
                f"{_binary(self.vhost)}, [name, messages_ready, messages_unacknowledged]), "
                f"lists:member(N, [{names}])])."
            )
        )

    def _ready(self) -> int:
        return self._per_queue(lambda ok: ok.message_count)

    def _per_queue(self, count: Callable[[Any], int]) -> int:
        """A count summed over the queues, from a passive declare of each."""
        connection = connect(self.url)
        try:
            total = 0
            for queue in QUEUES:
                channel = connection.channel()
                try:
                    total += count(channel.queue_declare(queue, passive=True))
                except amqp.exceptions.NotFound:
                    continue  # not declared yet, or never: nothing there
            return total
        except (OSError, amqp.exceptions.AMQPError) as error:
            raise BrokerDown(str(error)) from None
        finally:
            close_politely(connection)

    def ready_messages(self) -> int:
        """Messages waiting in the queues (not yet delivered to a consumer)."""
        return self._ready()

    def consumers_waiting(self) -> int:
        """Consumers on the queues: the broker pushes the next message to one of
        them (within its prefetch) whatever that process is doing."""
        return self._per_queue(lambda ok: ok.consumer_count)

    def take_back(self) -> Any:
        """Take one queued message (None if there is none), to put back later."""
        connection = connect(self.url)
        try:
            channel = connection.channel()
            for queue in QUEUES:
                try:
                    message = channel.basic_get(queue, no_ack=True)
                except amqp.exceptions.NotFound:
                    channel = connection.channel()
                    continue
                if message is not None:
                    return queue, message
            return None
        finally:
            close_politely(connection)

    def put_back(self, taken: Any) -> None:
        queue, message = taken
        connection = connect(self.url)
        try:
            connection.channel().basic_publish(message, exchange="", routing_key=queue)
        finally:
            close_politely(connection)

    def dead_lettered(self) -> int:
        """Messages a delivery-limit sent to the dead-letter queue."""
        connection = connect(self.url)
        try:
            return connection.channel().queue_declare(DEAD_LETTER, passive=True).message_count
        except amqp.exceptions.NotFound:
            return 0
        finally:
            close_politely(connection)

    def close(self) -> None:
        """Nothing held: every call connects afresh (a restart kills old connections)."""


def _binary(text: str) -> str:
    """An Erlang binary literal holding the text."""
    return "<<" + json.dumps(text) + ">>"
