"""The process-table reads both backends confirm a death by (the Docker backend
runs the same code inside the worker's container)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.backends import pids
from rig.backends.docker_workers import _SIGNAL_AND_CONFIRM


def test_a_process_that_dies_while_its_stat_is_read_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /proc/PID/stat opened, then the process exits: read() fails with ESRCH.
    def dying(self: Path) -> str:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(Path, "read_text", dying)
    assert pids.zombie(12345)
    assert pids.start_time(12345) is None


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A real process that sleeps until the test ends it; killed and reaped after."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield process
    process.kill()
    process.wait()


def _confirm(pid: int, signal: int, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """The Docker backend's in-container script, run here against a local pid."""
    script = [sys.executable, "-c", _SIGNAL_AND_CONFIRM, str(pid), str(signal), str(timeout_s)]
    return subprocess.run(script, capture_output=True, text=True, timeout=20)


def test_alive_zombie_and_reaped(child: subprocess.Popen[bytes]) -> None:
    assert not pids.zombie(child.pid)
    child.kill()
    deadline = time.monotonic() + 10
    while not pids.zombie(child.pid):  # dead, not yet reaped: a zombie
        assert time.monotonic() < deadline, f"pid {child.pid} not a zombie within 10 s"
        time.sleep(0.01)
    child.wait()
    assert pids.zombie(child.pid)  # reaped: gone from the table


def test_the_container_script_signals_and_confirms_a_death(
    child: subprocess.Popen[bytes],
) -> None:
    done = _confirm(child.pid, 9, 10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert abs(float(done.stdout) - time.time()) < 20


def test_the_container_script_says_alive_after_its_timeout(
    child: subprocess.Popen[bytes],
) -> None:
    done = _confirm(child.pid, 0, 0.2)
    assert (done.returncode, done.stdout.strip()) == (1, "alive")
