"""The Redis broker's restart, on both backends: while the server is down its
address refuses connections at once (a worker is told, not left waiting in
connect()), and the data survives only with persistence."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from rig.backends.base import ALONE_NODE, Exit


def _docker_node() -> Iterator[tuple[Any, tuple[str, int]]]:
    import docker

    from rig.backends.docker_engine import DockerEngine
    from rig.transports.redis.docker import PORT, DockerNode

    engine = DockerEngine(docker.from_env(), f"celery-rig-test-{uuid.uuid4().hex[:8]}")
    try:
        engine.create_network()
        node = DockerNode(engine, ALONE_NODE)  # named beside the shared one
        node.container.reload()
        networks = node.container.attrs["NetworkSettings"]["Networks"]
        yield node, (networks[engine.network.name]["IPAddress"], PORT)
    finally:
        engine.close()


def _local_node() -> Iterator[tuple[Any, tuple[str, int]]]:
    from rig.backends.run_dir import RunDirectory
    from rig.transports.redis.local import LocalNode

    host = RunDirectory(f"run-test-{uuid.uuid4().hex[:8]}")
    host.create()
    try:
        node = LocalNode(host, ALONE_NODE)
        try:
            url = redis.connection.parse_url(node.url)
            yield node, (url["host"], int(url["port"]))
        finally:
            node.close()
    finally:
        host.remove()


@pytest.fixture(params=["docker", "local"])
def node(request: pytest.FixtureRequest) -> Iterator[tuple[Any, tuple[str, int]]]:
    yield from _docker_node() if request.param == "docker" else _local_node()


def _refused(address: tuple[str, int]) -> str:
    """How a connection to address ends within 5 s: refused, or what else."""
    try:
        socket.create_connection(address, timeout=5).close()
    except ConnectionRefusedError:
        return "refused"
    except OSError as error:
        return f"not refused: {error!r}"
    return "not refused: it connected"


@pytest.mark.parametrize("persist", [False, True])
def test_a_restarting_redis_refuses_connections_and_keeps_data_only_with_persistence(
    node: tuple[Any, tuple[str, int]], persist: bool
) -> None:
    broker, address = node
    client = redis.Redis.from_url(broker.url, socket_timeout=5)
    client.set("queued", "1")
    while_down: list[str] = []

    restarted = broker.restart(persist, lambda: while_down.append(_refused(address)))

    assert isinstance(restarted, Exit), "the restart did not land"
    assert while_down == ["refused"], f"while Redis was down, a connection was {while_down}"
    assert client.get("queued") == (b"1" if persist else None)
    client.close()
