"""The Redis broker as a container of the run (the compose file's redis service).

The container outlives its redis-server: a shell runs the service's command,
and once it exits, runs it again when the rig writes a line to START_FIFO.
A broker restart is then what it is on a host: while the server is down its
port refuses connections, at once. A container that stopped with its server
took its address with it, and a worker's reconnection (or a late ack that
redis-py retries on a new connection) waited in connect() for answers from
nothing until the broker was back: 8 of 16 restarts under load never saw a
worker refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from rig.backends import redis_server
from rig.backends.base import Exit
from rig.backends.hosts import DockerHost, node_name
from rig.errors import BadInput
from rig.waiting import until_nothing_missing

SERVICE = "redis"
PORT = 6379
EXEC_S = 30.0  # removing a file or starting the server in the container, bounded
STOP_S = 10.0  # for the server to exit once told to shut down
START_FIFO = "/tmp/rig-start"
# The service's command is "$@"; the shell waits on the FIFO between two runs.
SUPERVISOR = (
    "sh",
    "-c",
    f'mkfifo {START_FIFO} && while :; do "$@"; read -r _ < {START_FIFO}; done',
    "sh",
)


class DockerNode:
    def __init__(self, host: DockerHost, name: str) -> None:
        host.check_image(SERVICE)
        self.host = host
        self.service = node_name(SERVICE, name)
        self.container: Any = host.run_service(
            SERVICE, publish=PORT, alias=self.service, wrapper=SUPERVISOR
        )
        self.url = f"redis://127.0.0.1:{host.host_port(self.container, PORT)}/0"
        self.inside_url = f"redis://{self.service}:{PORT}/0"
        host.wait_answering(self.container, lambda: redis_server.ping(self.url))

    def admin(self, request: str) -> str:
        raise BadInput("the redis broker has no admin tool the rig uses")

    def restart(self, persist: bool, while_down: Callable[[], None]) -> Exit | None:
        snapshot = _snapshot_path(self.url)
        # No start may load an older snapshot: remove it before a restart without
        # persistence, and once loaded after one with it.
        if not persist:
            self.host.exec(self.container, ["rm", "-f", snapshot], EXEC_S)
        # Redis exits on SHUTDOWN; SAVE writes the snapshot the next start loads.
        redis_server.shutdown(self.url, save=persist)
        if until_nothing_missing(lambda: _still_up(self.url), STOP_S, 0.05):
            return None
        try:
            while_down()
        finally:  # the broker comes back whatever went wrong while it was down
            self.host.exec(self.container, ["sh", "-c", f"echo > {START_FIFO}"], EXEC_S)
        self.host.wait_answering(self.container, lambda: redis_server.ping(self.url))
        if persist:
            self.host.exec(self.container, ["rm", "-f", snapshot], EXEC_S)
        return Exit(time.time(), "redis container " + ("saved, " if persist else "") + "restarted")

    def close(self) -> None:
        """The backend removes the run's containers."""


def _still_up(url: str) -> str:
    """Why the server is not down yet ("" once it refuses: the shutdown's
    connection closes as the server exits, or a moment before)."""
    try:
        redis_server.ping(url, timeout_s=1)
    except redis.ConnectionError:
        return ""
    except redis.TimeoutError:
        return "busy saving"
    return "answering"


def _snapshot_path(url: str) -> str:
    """Where Redis writes its snapshot (dir and dbfilename, as it reports them)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        config = client.config_get("dir") | client.config_get("dbfilename")
    finally:
        client.close()
    return f"{config['dir']}/{config['dbfilename']}"
