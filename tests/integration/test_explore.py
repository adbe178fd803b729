"""Explore: seeded schedules, properties over a history, shrinking, replay and
re-checking, on the local backend (Docker runs it the same way)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from rig.scenarios import parse_scenario
from tests.helpers import rig


@pytest.mark.integration
def test_explore_finds_the_duplicate_shrinks_it_and_the_replay_reproduces_it(
    tmp_path: Path,
) -> None:
    found = rig(
        "explore",
        "--acks",
        "late",
        "--task",
        "create",
        "--faults",
        "container",
        "--seed",
        "1",
        "--duration",
        "12",
        "--backend",
        "local",
        "--reports",
        str(tmp_path),
    )
    output = found.stdout + found.stderr
    assert found.returncode == 1, output
    assert "no-duplicate-rows (no business key has more than one row) FAILS" in output, output
    assert re.search(r"shrunk in [\d.]+ s \(\d+ runs\) to 1 fault\(s\)", output), output
    # Every line fits 100 columns, but a file's path, which cannot be broken.
    assert all(len(line) <= 100 or " " not in line.strip() for line in output.splitlines()), output
    (report,) = tmp_path.iterdir()
    # The smallest schedule, as a catalog scenario that parses.
    (scenario_path,) = report.glob("explored_*.toml")
    scenario = parse_scenario(scenario_path)
    assert scenario.settings.fault == "container" and scenario.expect is not None
    duplicates = scenario.expect["duplicate_rows"]
    assert isinstance(duplicates, tuple) and duplicates[0] == 1, duplicates
    # The replay of the smallest schedule (printed, and kept in results.json) fails again.
    shrunk = json.loads((report / "results.json").read_text())["explore"]["shrunk"]
    assert shrunk["schedule"].startswith("0:container@")
    words = shlex.split(shrunk["replay"])
    assert words[:3] == ["python", "-m", "rig"]
    for _ in range(2):
        again = rig(*words[3:], "--reports", str(tmp_path))
        assert again.returncode == 1 and "FAILS" in again.stdout, again.stdout + again.stderr
    # The stored run re-checks to the verdicts it gave.
    rechecked = rig("check", str(report))
    assert "every verdict as the run gave it" in rechecked.stdout, rechecked.stdout


@pytest.mark.integration
def test_get_or_create_holds_over_many_tasks_and_faults(tmp_path: Path) -> None:
    held = rig(
        "explore",
        "--acks",
        "late",
        "--task",
        "get_or_create",
        "--faults",
        "container,pool-child,quit",
        "--seed",
        "7",
        "--duration",
        "16",
        "--backend",
        "local",
        "--reports",
        str(tmp_path),
    )
    output = held.stdout + held.stderr
    assert held.returncode == 0, output
    match = re.search(
        r"HOLDS\s+over (\d+) tasks, \d+ executions: \d+ fault\(s\) drawn, (\d+) landed", output
    )
    assert match, output
    assert int(match[1]) == 200 and int(match[2]) >= 10, output
