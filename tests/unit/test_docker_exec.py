"""A command run in a container is bounded: an engine that never finishes the
exec (seen on Docker 20.10 under a catalog's load) is a one-line ExecHung for
the caller, not a lane that waits for good."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rig.backends.docker_engine import DockerEngine
from rig.backends.hosts import Executed
from rig.errors import ExecHung


class Api:
    """The engine's exec endpoints: `exec_start` answers once `answer` is set."""

    def __init__(self, exit_code: int = 0) -> None:
        self.answer = threading.Event()
        self.exit_code = exit_code
        self.created: list[tuple[list[str], dict[str, str] | None]] = []

    def exec_create(self, container: str, command: list[str], environment: Any = None) -> Any:
        self.created.append((command, environment))
        return {"Id": "e1"}

    def exec_start(self, exec_id: str) -> bytes:
        self.answer.wait()
        return b"done\n"

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"ExitCode": self.exit_code}


class Client:
    def __init__(self, api: Api) -> None:
        self.api = api


class Container:
    id, name = "c1", "celery-rig-1234-redis"


def engine(api: Api) -> DockerEngine:
    built = object.__new__(DockerEngine)
    built.client = Client(api)
    return built


def test_an_exec_that_never_ends_is_exec_hung_within_its_bound() -> None:
    api = Api()
    began = time.monotonic()
    with pytest.raises(ExecHung, match="`rm -f` in container celery-rig-1234-redis did not"):
        engine(api).exec(Container(), ["rm", "-f", "/data/dump.rdb"], timeout_s=0.3)
    assert 0.3 <= time.monotonic() - began < 5
    api.answer.set()  # the hung thread may end now


def test_an_exec_that_ends_gives_its_exit_code_and_output() -> None:
    api = Api(exit_code=3)
    api.answer.set()
    done = engine(api).exec(Container(), ["sh", "-c", "x"], 5, {"A": "1"})
    assert done == Executed(3, "done\n")
    assert api.created == [(["sh", "-c", "x"], {"A": "1"})]
