"""Runs a list of scenarios on one backend session; shared by the CLI,
the soak and the pytest scenario tests."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from rig import schema
from rig.backends.base import lacks as backend_lacks
from rig.faults.registry import part as fault_part
from rig.scenarios import Scenario
from rig.settings import Settings
from rig.terminal import console, program

if TYPE_CHECKING:  # a session imports the runner: the command line checks its input first
    from rig.runner import Progress, Result, Runner


@contextmanager
def session(backend_name: str | None, say: Progress) -> Iterator[Runner]:
    """A started backend and a runner on it; everything is removed on the way out.
    Variables that would point Celery at a user's own broker or result store are
    out of this process's environment meanwhile (Celery reads them first)."""
    from rig.isolation import CELERY_ENVIRONMENT

    hidden = {name: os.environ.pop(name) for name in CELERY_ENVIRONMENT if name in os.environ}
    try:
        with _started(backend_name, say) as runner:
            yield runner
    finally:
        os.environ.update(hidden)


@contextmanager
def _started(backend_name: str | None, say: Progress) -> Iterator[Runner]:
    from rig.backends.select import choose
    from rig.runner import Runner

    backend = choose(backend_name)
    console.print(f"backend: {backend.info.name} ({backend.info.reason})")
    try:
        say("starting the broker and the database")
        services = backend.start()
        for note in backend.info.notes:
            console.print(note)
        runner = Runner(backend, services)
        try:
            yield runner
        finally:
            runner.close()
    finally:
        backend.close()


def skip_reason(scenario: Scenario, runner: Runner) -> str | None:
    """Why this scenario cannot run on its transport or this backend, or None."""
    if scenario.skip:
        return f"skipped on {scenario.transport}: {scenario.skip}"
    engine = runner.services.database_engine
    if "postgresql" in scenario.requires and engine != "postgresql":
        return (
            f"skipped: needs PostgreSQL for its concurrent insert race, this backend runs "
            f"{engine} (`make setup` installs PostgreSQL for the local backend)"
        )
    lacking = cannot(runner, scenario.settings.fault)
    return f"skipped: {lacking}" if lacking else None


def cannot(runner: Runner, fault: str) -> str | None:
    """What this backend cannot do that the fault needs, and why; None if nothing."""
    lacks = backend_lacks(runner.backend)
    for capability in (c for c in fault_part(fault, "NEEDS", ()) if c in lacks):
        return f"the {runner.backend.info.name} backend cannot {capability}: {lacks[capability]}"
    return None


def skipped_row(scenario: Scenario, reason: str) -> dict[str, Any]:
    return {
        "scenario": scenario.label,
        "transport": scenario.transport,
        "verdict": "skipped",
        "reasons": [reason],
        "settings": scenario.settings.as_dict(),
        "expected": {},
        "counts": {},
        "seconds": 0.0,
    }


def run_scenarios(
    runner: Runner,
    scenarios: list[Scenario],
    say: Progress,
    on_result: Callable[[dict[str, Any]], None] = lambda _row: None,
    jobs: int = 1,
) -> tuple[list[Result], list[dict[str, Any]]]:
    """Run them in order, each next crew starting while the previous run settles,
    or `jobs` at a time (rig.lanes); `on_result` sees each row (a result's JSON,
    or a skipped row) as it comes."""
    reasons = [skip_reason(scenario, runner) for scenario in scenarios]
    runnable = [s for s, reason in zip(scenarios, reasons, strict=True) if reason is None]
    if jobs > 1:
        from rig.lanes import run_in_lanes

        rows = [skipped_row(s, r) for s, r in zip(scenarios, reasons, strict=True) if r]
        for row in rows:
            on_result(row)
        return run_in_lanes(runner, runnable, jobs, say, on_result), rows
    # What runs after each runnable scenario: its crew starts while this one settles.
    then = dict(zip((s.label for s in runnable), (s.settings for s in runnable[1:]), strict=False))
    results: list[Result] = []
    skipped: list[dict[str, Any]] = []
    for scenario, reason in zip(scenarios, reasons, strict=True):
        if reason:
            skipped.append(skipped_row(scenario, reason))
            on_result(skipped[-1])
            continue
        result = runner.run(
            scenario.label,
            scenario.settings,
            scenario.expect,
            say,
            partial(then.get, scenario.label),
        )
        results.append(result)
        on_result(result.as_json())
    return results, skipped


def on_transports(scenarios: list[Scenario], transports: list[str]) -> list[Scenario]:
    """Each scenario on each transport: all on the first, then all on the next (a
    crew starts while the previous run settles, on the same broker)."""
    return [scenario.on(transport) for transport in transports for scenario in scenarios]


def replay_command(name: str, settings: Settings, backend: str, catalog: bool) -> str:
    """The command that runs this again alone: by name (with its transport) for a
    catalog scenario, with the settings that differ from the defaults for a cell."""
    if catalog:
        return f"{program()} run {name} --backend {backend}"
    flags = [shlex.quote(part) for part in schema.as_flags(settings)]
    return " ".join([program(), "run", *flags, "--backend", backend])
