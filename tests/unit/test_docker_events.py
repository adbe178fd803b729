"""A container that had exited when its signal came: its death from the engine's record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from rig.backends.docker_events import DeathWatch


def test_a_death_before_the_signal_is_the_engines_finished_time_and_code() -> None:
    deaths = DeathWatch(client=cast(Any, None), run_label="com.celery-rig.run=x")
    deaths.expect("c1")  # the signal was about to go: the next death is waited for
    state = {"FinishedAt": "2026-12-02T06:13:00.123456789Z", "ExitCode": 0}
    deaths.died_before_signal("c1", state)
    exit_ = deaths.wait_death("c1", timeout_s=0)
    assert exit_ is not None
    expected = datetime(2026, 12, 2, 6, 13, tzinfo=UTC).timestamp() + 0.123456789
    assert abs(exit_.at - expected) < 1e-6
    assert exit_.detail == "die event, exit code 0"
