"""Producers leave nothing behind: their logs and process groups live in a run
directory of their own, which the run removes, and which the next start (or
`celery-rig clean`) sweeps if the rig was killed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.backends import run_dir
from rig.backends.pids import alive
from rig.backends.run_dir import remove_stale_runs
from rig.senders import Producer, Senders
from rig.waiting import until_nothing_missing


def a_producer(senders: Senders, task_id: str) -> Producer:
    """A process that lives until killed, started as the run starts a producer."""
    log = senders.producer_log(task_id)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"],
            stdout=output,
            start_new_session=True,
        )
    producer = Producer(task_id, process, log)
    senders.add_producer(producer)
    return producer


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runs = tmp_path / "celery-rig"
    monkeypatch.setattr(run_dir, "RUNS_DIR", runs)
    return runs


@pytest.mark.integration
def test_stopping_the_senders_kills_the_producers_and_removes_their_logs(runs: Path) -> None:
    senders = Senders()
    producer = a_producer(senders, "t1")
    assert producer.log.parent.parent == runs and producer.log.exists()
    senders.stop()
    assert producer.process.poll() is not None
    assert not runs.exists(), list(runs.rglob("*"))


@pytest.mark.integration
def test_a_killed_rigs_producers_are_swept_by_the_next_start(runs: Path) -> None:
    senders = Senders()
    producer = a_producer(senders, "t1")
    directory = producer.log.parent
    (directory / "owner").write_text("0")  # as if its controller had been SIGKILLed
    try:
        assert remove_stale_runs(runs) == [directory.name]
        gone = until_nothing_missing(
            lambda: "still running" if alive(producer.process.pid) else "", 10, 0.05
        )
        assert gone == "", f"the producer {producer.process.pid} outlived the sweep"
        assert not directory.exists()
    finally:
        senders.stop()
