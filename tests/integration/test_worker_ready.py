"""A crew's start waits for its workers' own word that their consumer is up
(rig.checkpoints.announce_ready, at Celery's worker_ready), read from a real
control store, before the one ping that confirms it (rig.crews.wait_announced)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from rig import contract
from rig.backends import redis_server
from rig.backends.run_dir import RunDirectory
from rig.control import Control
from rig.crews import wait_announced
from rig.events import WorkerStartFailed


@pytest.fixture
def control() -> Iterator[Control]:
    host = RunDirectory(f"run-test-{uuid.uuid4().hex[:8]}")
    host.create()
    url, command = redis_server.command(redis_server.find(), host.dir, "control")
    server = host.spawn("control", command, {})
    try:
        redis_server.wait_answering(url, host.dir / "control.log")
        store = Control(url)
        yield store
        store.close()
    finally:
        host.kill_group(server)
        host.remove()


def _announce(url: str, hostname: str) -> None:
    """announce_ready in a process of its own, as a worker calls it."""
    code = f"from rig.checkpoints import announce_ready; announce_ready({hostname!r})"
    done = subprocess.run(
        [sys.executable, "-c", code], env={contract.CONTROL_URL: url}, timeout=30, check=False
    )
    assert done.returncode == 0, "announce_ready failed in its own process"


def test_the_crew_waits_until_every_worker_announced(control: Control) -> None:
    _announce(control.url, "celery@w1-1")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="celery@w2-1"):
        wait_announced(control, ["celery@w1-1", "celery@w2-1"], 1.5, lambda: "")
    assert time.monotonic() - started >= 1.4, "the wait ended before its bound"
    _announce(control.url, "celery@w1-2")
    _announce(control.url, "celery@w2-2")
    wait_announced(control, ["celery@w1-2", "celery@w2-2"], 10, lambda: "")
    assert control.wait_ready(0.1) == set(), "an announcement was read twice"


def test_a_worker_that_stopped_ends_the_wait(control: Control) -> None:
    started = time.monotonic()
    with pytest.raises(WorkerStartFailed, match="ImportError"):
        wait_announced(control, ["celery@w1-3"], 60, lambda: "w1-3: ImportError: no app")
    assert time.monotonic() - started < 5, "a stopped worker waited for the bound"
