"""Backend selection and the local backend's process bookkeeping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.backends.pids import start_time
from rig.backends.run_dir import RUN_ENV, remove_stale_runs
from rig.backends.select import decide
from rig.errors import BadInput


def _sleeper(run_dir: Path | None = None) -> subprocess.Popen[bytes]:
    """A process of its own group; started for run_dir (its marker) when given."""
    marker = {RUN_ENV: str(run_dir)} if run_dir else {}
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True,
        env={**os.environ, **marker},
    )


def test_auto_picks_docker_when_an_engine_answers() -> None:
    assert decide("auto", (True, "Docker engine 20.10 answers")) == (
        "docker",
        "Docker engine 20.10 answers",
    )


def test_auto_falls_back_to_local_and_says_why() -> None:
    name, reason = decide("auto", (False, "connection refused"))
    assert name == "local"
    assert "connection refused" in reason


def test_an_explicit_choice_wins() -> None:
    assert decide("local", None)[0] == "local"
    assert decide("docker", None)[0] == "docker"


def test_an_unknown_backend_is_an_error() -> None:
    with pytest.raises(BadInput, match="expected one of auto, docker, local"):
        decide("kubernetes", None)


def test_stale_run_is_killed_and_removed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-stale"
    run_dir.mkdir()
    stale = _sleeper()
    # An owner pid that no longer exists: the controller was killed.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / "owner").write_text(str(dead.pid))
    (run_dir / "pids").write_text(f"{stale.pid} {start_time(stale.pid)}\n")
    assert remove_stale_runs(tmp_path) == ["run-stale"]
    assert stale.wait(timeout=10) == -9
    assert not run_dir.exists()


def test_live_run_and_foreign_process_are_left_alone(tmp_path: Path) -> None:
    live_dir = tmp_path / "run-live"
    live_dir.mkdir()
    (live_dir / "owner").write_text(str(os.getpid()))
    stale_dir = tmp_path / "run-gone"
    stale_dir.mkdir()
    (stale_dir / "owner").write_text("0")
    # A pid the stale run recorded, reused since by another process (other start time).
    foreign = _sleeper()
    started = start_time(foreign.pid)
    assert started is not None, "the sleeper is gone"
    (stale_dir / "pids").write_text(f"{foreign.pid} {started - 1}\n")
    try:
        assert remove_stale_runs(tmp_path) == ["run-gone"]
        assert live_dir.exists()
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


@pytest.mark.parametrize("directory_left", [True, False])
def test_a_process_started_too_late_to_be_recorded_is_killed(
    tmp_path: Path, directory_left: bool
) -> None:
    """The controller was killed between starting a worker and writing its pid:
    the worker carries its run's directory in its environment, and that finds it,
    whether or not the directory is still there."""
    run_dir = tmp_path / "run-killed"
    unrecorded = _sleeper(run_dir)
    if directory_left:
        run_dir.mkdir()
        (run_dir / "owner").write_text("0")
    try:
        assert remove_stale_runs(tmp_path) == ["run-killed"]
        assert unrecorded.wait(timeout=10) == -9
        assert not run_dir.exists()
    finally:
        unrecorded.kill()
        unrecorded.wait()


def test_a_process_of_a_live_run_is_left_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-live"
    run_dir.mkdir()
    (run_dir / "owner").write_text(str(os.getpid()))
    running = _sleeper(run_dir)
    try:
        assert remove_stale_runs(tmp_path) == []
        assert running.poll() is None, "a live run's process was killed"
        assert run_dir.exists()
    finally:
        running.kill()
        running.wait()
