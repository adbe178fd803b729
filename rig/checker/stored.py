"""Re-checks a stored run (reports/<time>/history.jsonl and results.json)
with the current checker: no backend, nothing started (Jepsen's analyze)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rig import checker
from rig.checker import properties
from rig.checker.schedule import parse_schedule
from rig.errors import BadInput
from rig.history import Event, History


def _files(path: Path) -> tuple[Path, Path]:
    history = path / "history.jsonl" if path.is_dir() else path
    if not history.is_file():
        raise BadInput(f"{path}: no history.jsonl there (give a report folder or the file)")
    return history, history.parent / "results.json"


def _histories(path: Path) -> dict[str, History]:
    by_scenario: dict[str, list[Event]] = defaultdict(list)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
            event = Event(at=record["at"], kind=record["kind"], data=record["data"])
            by_scenario[record["scenario"]].append(event)
        except (ValueError, KeyError, TypeError) as error:
            raise BadInput(f"{path}:{number}: not a history event ({error})") from None
    return {name: History(events) for name, events in by_scenario.items()}


def _stored_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        return {row["scenario"]: row for row in json.loads(path.read_text())["scenarios"]}
    except (ValueError, KeyError, TypeError) as error:
        raise BadInput(f"{path}: cannot read the stored results ({error})") from None


def recheck(path: Path) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(scenario, the verdict the run gave or None, the re-checked row) per scenario."""
    history_path, results_path = _files(path)
    stored = _stored_rows(results_path)
    for name, history in _histories(history_path).items():
        row = stored.get(name, {})
        expected = row.get("expected")
        expectation = checker.make_expectation(**expected) if expected else None
        fault_expected = row.get("settings", {}).get("fault", "none") != "none"
        outcome = checker.check(history, expectation, fault_expected)
        if row.get("expect"):  # an explored run: its property, over the same history
            found = properties.violations(history, row["expect"])
            landed = len(parse_schedule(row.get("landed", "")))
            outcome = properties.judge(outcome, found, landed)
        rechecked = {
            "scenario": name,
            "verdict": outcome.verdict,
            "reasons": outcome.reasons,
            "counts": outcome.counts.as_dict(),
            "seconds": row.get("seconds", 0.0),
        }
        yield name, row.get("verdict"), rechecked
