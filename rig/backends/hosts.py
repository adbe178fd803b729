"""What a transport's broker node gets from the backend it runs on: the
primitives to start, reach and restart a service, and nothing about brokers.
A transport package holds how its broker runs on each (rig.transports.<name>
.docker and .local); the backend keeps the nodes asked for (BrokerNodes)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rig.backends.base import Exit


@dataclass(frozen=True)
class Executed:
    """A command run in a container: its exit code and its output (both streams)."""

    exit_code: int
    output: str


class BrokerNode(Protocol):
    """A transport's broker, started on a backend."""

    url: str  # as the controller reaches it
    inside_url: str  # as the workers reach it
    service: str  # its name on the backend's network (what a partition cuts)

    def admin(self, request: str) -> str:
        """A request to the broker's admin interface, where it runs (RabbitMQ: an
        Erlang expression evaluated in the node); the reply's text."""
        ...

    def restart(self, persist: bool, while_down: Callable[[], None]) -> Exit | None:
        """Stop it, call while_down, start it again on the same address; keep its
        data when persist. Confirmed when it answers again (None if it never stopped)."""
        ...

    def close(self) -> None:
        """Stop what the backend will not remove by itself."""
        ...


class DockerHost(Protocol):
    """The Docker backend's primitives (rig.backends.docker)."""

    def service_spec(self, name: str) -> dict[str, Any]:
        """The compose file's service `name`."""
        ...

    def check_image(self, service: str, image: str = "") -> None: ...

    def run_container(self, name: str, image: str, role: str = "service", **options: Any) -> Any:
        """A labelled container on the run's network, reachable there as `name`."""
        ...

    def run_service(
        self, name: str, publish: int, alias: str = "", wrapper: Sequence[str] = ()
    ) -> Any:
        """The compose service as a container, `publish` on a free loopback port;
        its command run by `wrapper` (a program and its arguments) when given."""
        ...

    def host_port(self, container: Any, port: int) -> int: ...

    def exec(
        self,
        container: Any,
        command: list[str],
        timeout_s: float,
        environment: dict[str, str] | None = None,
    ) -> Executed:
        """The command run in the container, bounded; ExecHung (rig.errors) when
        the engine never finishes it."""
        ...

    def wait_answering(
        self, container: Any, connect: Callable[[], object], timeout_s: float = 60
    ) -> None: ...


class LocalHost(Protocol):
    """The local backend's primitives (rig.backends.local)."""

    dir: Path  # the run's directory: logs, data, pid file

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """A process in its own group, logged to <dir>/<name>.log, its pid recorded."""
        ...

    def kill_group(self, process: subprocess.Popen[bytes]) -> None: ...


def node_name(name: str, node: str) -> str:
    """A broker node's name on its backend (a container, a log, a data
    directory): `name` for the node runs share, name-<node> beside it
    (redis, redis-alone)."""
    return f"{name}-{node}" if node else name


class BrokerNodes:
    """A backend's broker nodes, per transport and node (rig.backends.base
    .SHARED_NODE, ALONE_NODE), each started on first use (RabbitMQ takes
    seconds); runs in parallel may ask for one at once, and one node's start
    makes no other wait."""

    def __init__(self, start: Callable[[str, str], BrokerNode]) -> None:
        self._start = start  # (transport, node) -> the node started
        self._nodes: dict[tuple[str, str], BrokerNode] = {}
        self._starting: dict[tuple[str, str], threading.Lock] = {}
        self._locks = threading.Lock()

    def get(self, transport: str, node: str) -> BrokerNode:
        key = (transport, node)
        with self._locks:
            starting = self._starting.setdefault(key, threading.Lock())
        with starting:
            if key not in self._nodes:
                self._nodes[key] = self._start(transport, node)
            return self._nodes[key]

    def close(self) -> None:
        with self._locks:
            nodes = list(self._nodes.values())
            self._nodes.clear()
        for node in nodes:
            node.close()
