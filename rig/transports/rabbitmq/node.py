"""The rig's RabbitMQ node, wherever it runs: its boot definitions (user and
the crews' virtual hosts), its config, and how the rig connects to it."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import amqp

from rig.errors import BrokerDown

PORT = 5672
SLOTS = 16  # virtual hosts rig0 … rig15, one per crew, as Redis has 16 databases
DEFAULT_CONSUMER_TIMEOUT_MS = 1_800_000  # RabbitMQ 3.10's default: 30 minutes
USER = "guest"
ADMIN_TIMEOUT_S = 30  # an admin call: about 0.1 s
# Stopping or starting the broker application: 1 to 2 s on an idle machine.
RESTART_TIMEOUT_S = 120


def vhost(slot: int) -> str:
    return f"rig{slot}"


def definitions() -> dict[str, Any]:
    """Imported at boot: the rig's user and the crews' virtual hosts, each open to
    it (a node that imports definitions creates no default user)."""
    hosts = [vhost(slot) for slot in range(SLOTS)]
    return {
        "users": [
            {
                "name": USER,
                "password_hash": password_hash(USER),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }
        ],
        "vhosts": [{"name": name} for name in hosts],
        "permissions": [
            {"user": USER, "vhost": name, "configure": ".*", "write": ".*", "read": ".*"}
            for name in hosts
        ],
    }


def password_hash(password: str) -> str:
    """RabbitMQ's stored form: base64(salt + sha256(salt + password)), 4-byte salt."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def node_config(listener: str, definitions_file: str) -> str:
    """rabbitmq.conf for the rig's node: `listener` is "127.0.0.1:PORT" locally,
    "5672" in a container; the default user may log in from anywhere (the port
    is published on 127.0.0.1 only)."""
    return "\n".join(
        [
            f"listeners.tcp.default = {listener}",
            "loopback_users = none",
            f"load_definitions = {definitions_file}",
            "log.console = true",
            "log.console.level = warning",
            "log.file = false",
            # Where a scenario sets consumer_timeout, the rig changes it at run time.
            f"consumer_timeout = {DEFAULT_CONSUMER_TIMEOUT_MS}",
            "",
        ]
    )


def connect(url: str) -> amqp.Connection:
    """An AMQP connection to the URL's node and virtual host, or BrokerDown."""
    parts = urlsplit(url)
    connection = amqp.Connection(
        f"{parts.hostname}:{parts.port or PORT}",
        userid=parts.username or USER,
        password=parts.password or USER,
        virtual_host=parts.path.lstrip("/"),
        connect_timeout=5,
    )
    try:
        connection.connect()
    except (OSError, amqp.exceptions.AMQPError) as error:
        raise BrokerDown(str(error)) from None
    return connection


def answering(url: str) -> None:
    """Raise BrokerDown unless the node accepts an AMQP connection to this URL's
    virtual host (the rig's readiness check: a real connection, not a sleep)."""
    close_politely(connect(url))


def close_politely(connection: amqp.Connection) -> None:
    """Close politely (the node logs an abrupt close as a warning); drop it if that fails."""
    try:
        connection.close()
    except (OSError, amqp.exceptions.AMQPError):
        connection.collect()


def erl_call_args(node_name: str, timeout_s: float = ADMIN_TIMEOUT_S) -> list[str]:
    """erl_call's arguments to evaluate an Erlang expression (its stdin) in the
    running node. erl_call is a small C client of the node's distribution port:
    about 0.1 s a call, where `rabbitmqctl` boots an Erlang VM and its CLI for 2
    to 3 s and about 4 CPU seconds (measured in a container), which the settle
    wait's polls paid in every RabbitMQ run. Each call names itself afresh:
    with erl_call's own name (`-r` too), of 12 calls at once 1 connected."""
    client = f"rig-{uuid.uuid4().hex[:12]}"
    return ["-h", client, "-timeout", str(round(timeout_s)), "-sname", node_name, "-e"]


def reply(exit_code: int, output: str) -> str:
    """The text of an evaluated term, from erl_call's `{ok, TERM}`; BrokerDown with
    erl_call's words if the node did not answer or the expression failed."""
    text = output.strip()
    if exit_code == 0 and text.startswith("{ok, ") and text.endswith("}"):
        return text[len("{ok, ") : -1]
    one_line = " ".join(text.split())[:300] or f"exit code {exit_code}"
    raise BrokerDown(f"erl_call: {one_line}")


def restart_broker(
    evaluate: Callable[[str, float], str], persist: bool, while_down: Callable[[], None]
) -> bool:
    """A maintenance restart of the broker in its running node: `rabbit:stop()`
    closes every connection and the listener and writes queues and persistent
    messages out, as `rabbitmqctl stop_app` does (it calls the same function)
    before a node halts; `rabbit:start()` boots the broker again, importing the
    definitions (about 2 s, where a new VM took about 13 s here, most of it
    loading code). Without persist, `rabbit_mnesia:reset()` wipes the data
    between the two (`rabbitmqctl reset`), as a node replaced with fresh storage.
    `evaluate` runs an expression in the node within a bound (an admin call):
    rabbitmqctl boots a VM of its own for each command, 2 to 3 s idle and more
    under load, and a broker outage must land before a held countdown's ETA.
    False if the broker did not stop (the fault did not land)."""
    try:
        _done(evaluate("rabbit:stop().", RESTART_TIMEOUT_S), "stop")
    except BrokerDown:
        return False
    if not persist:
        _done(evaluate("rabbit_mnesia:reset().", RESTART_TIMEOUT_S), "reset")
    try:
        while_down()
    finally:  # the broker comes back whatever went wrong while it was down
        _done(evaluate("rabbit:start().", RESTART_TIMEOUT_S), "start")
    return True


def _done(term: str, step: str) -> None:
    """BrokerDown unless the broker's step answered `ok`."""
    if term != "ok":
        raise BrokerDown(f"rabbit {step}: {' '.join(term.split())[:300]}")
