"""The Redis broker as a redis-server process of the run (Debian's)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from rig.backends import redis_server
from rig.backends.base import Exit
from rig.backends.hosts import LocalHost, node_name
from rig.errors import BadInput

NAME = "redis"


class LocalNode:
    def __init__(self, host: LocalHost, name: str) -> None:
        server = redis_server.find()
        self.host = host
        # Its log, <run dir>/redis.log, and its snapshot, broker.rdb (redis-alone,
        # broker-alone.rdb for the node runs that stop it take in turn).
        self.service = node_name(NAME, name)
        snapshot_name = node_name("broker", name)
        self.url, self.command = redis_server.command(server, host.dir, snapshot_name)
        self.inside_url = self.url
        self.snapshot = host.dir / f"{snapshot_name}.rdb"
        self.log = host.dir / f"{self.service}.log"
        self.process: subprocess.Popen[bytes] | None = host.spawn(self.service, self.command, {})
        redis_server.wait_answering(self.url, self.log)

    def admin(self, request: str) -> str:
        raise BadInput("the redis broker has no admin tool the rig uses")

    def restart(self, persist: bool, while_down: Callable[[], None]) -> Exit | None:
        # No start may load an older snapshot: remove it before a restart without
        # persistence, and once loaded after one with it.
        if not persist:
            self.snapshot.unlink(missing_ok=True)
        assert self.process is not None
        redis_server.shutdown(self.url, save=persist)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None
        try:
            while_down()
        finally:  # the broker comes back whatever went wrong while it was down
            self.process = self.host.spawn(self.service, self.command, {})
        redis_server.wait_answering(self.url, self.log)
        if persist:
            self.snapshot.unlink(missing_ok=True)
        return Exit(time.time(), "redis-server " + ("saved, " if persist else "") + "restarted")

    def close(self) -> None:
        if self.process is not None:
            self.host.kill_group(self.process)
            self.process = None
