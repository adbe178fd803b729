"""A redis-server as a process of the run (the local backend's control store,
and the Redis transport's local broker), and the ping that says it answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from rig.backends.base import free_port
from rig.errors import EnvironmentProblem


def find() -> str:
    """Debian's redis-server on the PATH, or a one-line EnvironmentProblem."""
    server = shutil.which("redis-server")
    if server is None:
        raise EnvironmentProblem(
            "redis-server not found: install Debian's redis-server (`make setup` does, in the "
            "rig's checkout)"
        )
    return server


def command(server: str, run_dir: Path, name: str) -> tuple[str, list[str]]:
    """A redis-server on a free loopback port: its URL and its command. No
    automatic persistence; a SHUTDOWN SAVE writes <name>.rdb into the run's
    directory, which the next start loads."""
    port = free_port()
    argv = [
        *(server, "--port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--dir", str(run_dir)),
        *("--dbfilename", f"{name}.rdb"),
    ]
    return f"redis://127.0.0.1:{port}/0", argv


def ping(url: str, timeout_s: float = 2) -> None:
    client = redis.Redis.from_url(url, socket_timeout=timeout_s)
    try:
        client.ping()
    finally:
        client.close()


def shutdown(url: str, save: bool) -> None:
    """SHUTDOWN SAVE (the snapshot the next start loads) or NOSAVE, through a
    connection: the server closes it as it exits."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.shutdown(save=save, nosave=not save)
    except redis.ConnectionError:
        pass  # it closes the connection as it goes
    finally:
        client.close()


def wait_answering(url: str, log: Path, timeout_s: float = 15) -> None:
    """Until the server at url answers a PING; its log's tail if it never does."""
    try:
        retry(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.1),
            retry=retry_if_exception_type(redis.ConnectionError),
            reraise=True,
        )(ping)(url, 1)
    except redis.ConnectionError:
        tail = log.read_text()[-2000:] if log.exists() else "no log"
        raise EnvironmentProblem(f"redis-server did not answer on {url}:\n{tail}") from None
