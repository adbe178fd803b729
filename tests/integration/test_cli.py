"""The command line as a user meets it: help on every flag, output that fits
100 columns, a replay command that reproduces the run, and a crashing
scenario that becomes a result instead of ending the catalog."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from rig import cli
from rig.plans import OneFault, RunContext
from tests.helpers import rig


def replay_from(output: str) -> list[str]:
    """The command printed after `replay:`, its backslash-continued lines joined."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "replay:") + 1
    parts = []
    for line in lines[start:]:
        parts.append(line.strip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            break
    words = shlex.split(" ".join(parts))
    assert words[:3] == ["python", "-m", "rig"], words
    return words[3:]


@pytest.mark.integration
def test_the_replay_of_a_matrix_cell_gives_the_same_verdict(tmp_path: Path) -> None:
    first = rig(
        "run", "--acks", "early", "--fault", "container", "--at", "before_write",
        "--backend", "local", "--json", str(tmp_path / "first.json"), timeout=180,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert all(len(line) <= 100 for line in first.stdout.splitlines()), first.stdout
    replay = replay_from(first.stdout)
    # Only what differs from the defaults: four flags, not every setting.
    assert replay[1:7] == ["--acks", "early", "--fault", "container", "--at", "before_write"]
    assert "--visibility-timeout" not in replay, replay
    second = rig(*replay, "--json", str(tmp_path / "second.json"), timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    rows = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second")]
    assert rows[0]["verdict"] == rows[1]["verdict"] == "observed", rows
    assert rows[0]["settings"] == rows[1]["settings"]
    # Early ack, killed before the write: lost both times, never redelivered.
    for row in rows:
        assert (row["counts"]["lost"], row["counts"]["redelivered"]) == (1, 0), row


@pytest.mark.integration
def test_a_scenario_that_crashes_is_an_error_result_and_the_report_lists_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    crashing, passing = "late_ack_kill_in_transaction", "early_ack_kill_before_write"
    execute = OneFault.execute

    def execute_or_crash(self: OneFault, run: RunContext) -> None:
        if self.name == crashing:
            raise RuntimeError("injected crash while sending\nsecond line")
        execute(self, run)

    monkeypatch.setattr(OneFault, "execute", execute_or_crash)
    # The rig as a user outside a checkout starts it (pytest's own argv[0] varies).
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/celery-rig"])
    code = cli.main(
        ["chaos", "--only", crashing, passing, "--backend", "local", "--reports", str(tmp_path)]
    )
    assert code == 1
    (directory,) = tmp_path.iterdir()
    rows = {
        r["scenario"]: r for r in json.loads((directory / "results.json").read_text())["scenarios"]
    }
    assert rows[crashing]["verdict"] == "error"
    assert rows[crashing]["reasons"] == ["RuntimeError: injected crash while sending"]
    assert rows[passing]["verdict"] == "pass", rows[passing]
    html = (directory / "report.html").read_text()
    assert crashing in html and passing in html
    assert list((directory / "logs").glob(f"{crashing}-w*.log")), "the crashed run's worker logs"
    output = capsys.readouterr().out
    assert "replay:" in output and f"celery-rig run {crashing} --backend local" in output
    assert all(len(line) <= 100 for line in output.splitlines()), output


@pytest.mark.integration
def test_a_soak_keeps_the_logs_and_history_of_each_wrong_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong verdict in a soak is what it is for: its run is kept, not only counted."""
    crashing, passing = "late_ack_kill_in_transaction", "early_ack_kill_before_write"
    execute = OneFault.execute
    runs = iter(range(1, 3))

    def crash_in_the_second_soak_run(self: OneFault, run: RunContext) -> None:
        if self.name == crashing and next(runs) == 2:
            raise RuntimeError("injected crash while sending")
        execute(self, run)

    monkeypatch.setattr(OneFault, "execute", crash_in_the_second_soak_run)
    code = cli.main(
        ["soak", "--runs", "2", "--only", crashing, passing, "--transport", "redis"]
        + ["--backend", "local", "--jobs", "1", "--reports", str(tmp_path)]
    )
    assert code == 1
    (directory,) = tmp_path.iterdir()  # the second run's, the only one with a wrong verdict
    assert directory.name.endswith("-soak-run2"), directory.name
    rows = json.loads((directory / "results.json").read_text())["scenarios"]
    assert [(r["scenario"], r["verdict"]) for r in rows] == [(crashing, "error")]
    assert list((directory / "logs").glob(f"{crashing}-w*.log")), "the wrong run's worker logs"
    assert crashing in (directory / "history.jsonl").read_text()


@pytest.mark.integration
def test_a_soak_tallies_each_scenarios_verdicts_and_its_time_to_a_verdict(tmp_path: Path) -> None:
    tally_path = tmp_path / "soak.json"
    done = rig(
        "soak", "--runs", "2", "--only", "early_ack_kill_before_write", "--transport", "redis",
        "--backend", "local", "--json", str(tally_path), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tally = json.loads(tally_path.read_text())
    entry = tally["scenarios"]["early_ack_kill_before_write"]
    assert (tally["runs"], entry["wrong"], entry["verdicts"]) == (2, 0, {"pass": 2})
    assert 0 < entry["median_s"] <= max(tally["seconds_per_run"]), tally
    assert "early_ack_kill_before_write: 0 wrong of 2" in done.stdout, done.stdout
