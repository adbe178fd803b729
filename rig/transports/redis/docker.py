"""The Redis broker as a container of the run (the compose file's redis service)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from rig.backends import redis_server
from rig.backends.base import Exit
from rig.backends.hosts import DockerHost
from rig.errors import BadInput

SERVICE = "redis"
PORT = 6379
EXEC_S = 30.0  # removing a file in the container, bounded


class DockerNode:
    def __init__(self, host: DockerHost) -> None:
        host.check_image(SERVICE)
        self.host = host
        self.service = SERVICE
        self.container: Any = host.run_service(SERVICE, publish=PORT)
        self.url = f"redis://127.0.0.1:{host.host_port(self.container, PORT)}/0"
        self.inside_url = f"redis://{SERVICE}:{PORT}/0"
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
        if self.container.wait(timeout=10).get("StatusCode") is None:
            return None
        try:
            while_down()
        finally:  # the broker comes back whatever went wrong while it was down
            self.container.start()
        self.host.wait_answering(self.container, lambda: redis_server.ping(self.url))
        if persist:
            self.host.exec(self.container, ["rm", "-f", snapshot], EXEC_S)
        return Exit(time.time(), "redis container " + ("saved, " if persist else "") + "restarted")

    def close(self) -> None:
        """The backend removes the run's containers."""


def _snapshot_path(url: str) -> str:
    """Where Redis writes its snapshot (dir and dbfilename, as it reports them)."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        config = client.config_get("dir") | client.config_get("dbfilename")
    finally:
        client.close()
    return f"{config['dir']}/{config['dbfilename']}"
