"""The catalog on the real stack, on both backends and both transports; one
marker per scenario, one per transport. The selected scenarios run together
the first time one is asked for: the two backends side by side, each
RIG_TEST_JOBS at a time (the CLI's --jobs); each test then checks its own result.

pytest -m chaos                                  # all of them
pytest -m late_ack_kill_after_commit_create       # one, everywhere
pytest -m "chaos and rabbitmq"                   # the catalog on RabbitMQ
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rig.catalog import replay_command, run_scenarios, skip_reason
from rig.checker import Counts, matches
from rig.runner import Result, Runner
from rig.scenarios import Scenario, load_catalog
from rig.transports import TRANSPORTS
from tests.conftest import matrix_settings

CATALOG = load_catalog()
BACKENDS = ("docker", "local")
# Scenarios at once on each backend (as chaos --jobs). The two backends run side
# by side, so 2 each is 4 lanes, the load the CI soaks measured (0 wrong); the
# CLI's default of 3 was soaked one backend at a time.
JOBS = int(os.environ.get("RIG_TEST_JOBS", "2"))
_RESULTS: dict[str, dict[str, Result]] = {}  # backend -> scenario label -> its result


def _results_on(backend: str, request: pytest.FixtureRequest) -> dict[str, Result]:
    """Every selected scenario, run once on its backend, JOBS at a time there. The
    backends' catalogs run side by side the first time one is asked for: each has
    brokers, databases and workers of its own, so neither waits for the other."""
    if not _RESULTS:
        runners = {}
        for name, scenarios in _selected(request.session).items():
            try:
                runners[name] = (request.getfixturevalue(f"{name}_runner"), scenarios)
            except pytest.skip.Exception:
                continue  # that backend's own tests say why it is skipped
        # Minutes of runs: each finished one is a line on the terminal, not captured.
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled(), ThreadPoolExecutor(len(runners) or 1) as pool:
            print()  # off the line pytest began with the file's name
            running = {
                name: pool.submit(_run_catalog, name, runner, scenarios)
                for name, (runner, scenarios) in runners.items()
            }
        _RESULTS.update({name: future.result() for name, future in running.items()})
    return _RESULTS.get(backend, {})


def _selected(session: pytest.Session) -> dict[str, list[Scenario]]:
    """The scenarios this session selected, by backend."""
    selected: dict[str, list[Scenario]] = {}
    for item in session.items:
        if isinstance(item, pytest.Function) and item.originalname == "test_scenario":
            params = {name: str(value) for name, value in item.callspec.params.items()}
            scenario = CATALOG[params["name"]].on(params["transport"])
            selected.setdefault(params["runner"], []).append(scenario)
    return selected


def _run_catalog(backend: str, runner: Runner, scenarios: list[Scenario]) -> dict[str, Result]:
    runnable = [s for s in scenarios if skip_reason(s, runner) is None]
    finished = itertools.count(1)

    def show(row: dict[str, Any]) -> None:
        where = f"[{backend} {next(finished)}/{len(runnable)}]"
        print(f"{where} {row['scenario']} {row['verdict']} {row['seconds']:.1f} s", flush=True)

    results, _ = run_scenarios(runner, runnable, lambda _step: None, show, jobs=JOBS)
    return {result.name: result for result in results}


@pytest.mark.parametrize(
    ("runner", "transport", "name"),
    [
        pytest.param(
            backend,
            transport,
            name,
            marks=[pytest.mark.chaos, getattr(pytest.mark, name), getattr(pytest.mark, transport)],
        )
        for name in CATALOG
        for backend in BACKENDS
        for transport in TRANSPORTS
    ],
    indirect=["runner"],
    ids=lambda value: value,
)
def test_scenario(
    runner: Runner, transport: str, name: str, request: pytest.FixtureRequest
) -> None:
    scenario = CATALOG[name].on(transport)
    reason = skip_reason(scenario, runner)
    if reason:
        pytest.skip(reason)
    backend = runner.backend.info.name
    result = _results_on(backend, request)[scenario.label]
    replay = replay_command(scenario.label, scenario.settings, backend, catalog=True)
    assert result.outcome.verdict == "pass", (
        f"{scenario.label}: {result.outcome.verdict}: {result.outcome.reasons}; replay: {replay}"
    )
    counts = result.outcome.counts.as_dict()
    assert scenario.expect is not None, f"{scenario.label} says nothing it expects"
    for count_name, expected in scenario.expect.items():
        assert matches(counts[count_name], expected), f"{count_name}={counts[count_name]}"
    # Every kill the scenario asked for landed inside its window.
    if scenario.settings.fault != "none":
        assert result.outcome.faults and all(f["landed"] for f in result.outcome.faults)


@pytest.mark.chaos
@pytest.mark.matrix(acks="late", fault="container", at="after_commit", task="create", tasks=4)
@pytest.mark.parametrize("runner", ["local"], indirect=True)
def test_prefetched_tasks_survive_a_kill(runner: Runner, request: pytest.FixtureRequest) -> None:
    """Four tasks on two workers, one worker killed mid-task: the killed task and
    anything the dead worker held are redelivered; nothing is lost."""
    settings = matrix_settings(request.node.get_closest_marker("matrix"), request.node.nodeid)
    result = runner.run("matrix", settings, None)
    assert result.outcome.verdict == "observed", result.outcome.reasons
    counts: Counts = result.outcome.counts
    assert counts.sent == 4
    assert counts.lost == 0 and counts.missing_rows == 0
    assert counts.completed == 4
    assert counts.redelivered >= 1
    assert counts.duplicate_rows == counts.duplicated_work >= 1
