"""Runs a list of scenarios on one backend session; shared by the CLI,
the soak and the pytest scenario tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rig.backends.select import choose
from rig.runner import Progress, Result, Runner
from rig.scenarios import Scenario


@contextmanager
def session(backend_name: str | None, say: Progress) -> Iterator[Runner]:
    """A started backend and a runner on it; everything is removed on the way out."""
    backend = choose(backend_name)
    say(f"backend: {backend.info.name} ({backend.info.reason})")
    try:
        say("starting the broker and the database")
        services = backend.start()
        for note in backend.info.notes:
            say(note)
        runner = Runner(backend, services)
        try:
            yield runner
        finally:
            runner.close()
    finally:
        backend.close()


def skip_reason(scenario: Scenario, database_engine: str) -> str | None:
    if "postgresql" in scenario.requires and database_engine != "postgresql":
        return (
            f"skipped: needs PostgreSQL for its concurrent insert race, this backend runs "
            f"{database_engine} (set DATABASE_URL to a PostgreSQL database)"
        )
    return None


def skipped_row(scenario: Scenario, reason: str) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "verdict": "skipped",
        "reasons": [reason],
        "settings": scenario.settings.as_dict(),
        "expected": {},
        "counts": {},
        "seconds": 0.0,
    }


def run_scenarios(
    runner: Runner, scenarios: list[Scenario], say: Progress
) -> tuple[list[Result], list[dict[str, Any]]]:
    results: list[Result] = []
    skipped: list[dict[str, Any]] = []
    for scenario in scenarios:
        reason = skip_reason(scenario, runner.services.database_engine)
        if reason:
            skipped.append(skipped_row(scenario, reason))
            continue
        results.append(runner.run(scenario.name, scenario.settings, scenario.expect, say))
    return results, skipped


def replay_command(name: str, backend: str) -> str:
    return f"python -m rig run {name} --backend {backend}"
