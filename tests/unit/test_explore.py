"""Explore: seeded schedules, properties over a history, shrinking, replay and
re-checking, on the local backend (Docker runs it the same way)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from rig.checker import properties
from rig.errors import BadInput
from rig.explore import EXPLORABLE, Step, generate, parse_schedule, schedule_text
from rig.history import EFFECTS, LEDGER, ROW, SENT, History
from tests.helpers import assert_clear_error, rig

POINTS = ("task_start", "after_commit")
NO_RUNNER: Any = None  # shrinking's runs are faked: explore_run never gets a runner


def _history(executions: dict[str, int], rows: dict[str, int], finished: bool = True) -> History:
    history = History()
    for number, (key, runs) in enumerate(executions.items()):
        history.add(SENT, task_id=f"t{number}", task="t", business_key=key)
        for attempt in range(1, runs + 1):
            history.add(
                LEDGER,
                task_id=f"t{number}",
                attempt=attempt,
                started_at=1.0,
                finished_at=2.0 if finished else None,
            )
    history.add(EFFECTS, source="SELECT ...")
    for key, count in rows.items():
        history.add(ROW, business_key=key, count=count)
    return history


def test_the_same_seed_draws_the_same_schedule() -> None:
    first = generate(7, ["container", "pause"], POINTS, duration=20, interval=1.5)
    assert first == generate(7, ["container", "pause"], POINTS, duration=20, interval=1.5)
    assert first != generate(8, ["container", "pause"], POINTS, duration=20, interval=1.5)
    assert 8 <= len(first) <= 40 and all(0 < s.at_s < 20 for s in first)
    assert {s.fault for s in first} <= {"container", "pause"} and {s.point for s in first} <= set(
        POINTS
    )


def test_a_schedule_reads_back_as_it_prints() -> None:
    steps = [Step(0.0, "container", "after_commit"), Step(2.5, "pause", "task_start")]
    assert parse_schedule(schedule_text(steps)) == steps
    with pytest.raises(BadInput, match="SECONDS:FAULT@POINT"):
        parse_schedule("2.5-container")


@pytest.mark.parametrize(
    ("name", "executions", "rows", "finished", "broken"),
    [
        ("no-lost", {"a": 1, "b": 0}, {"a": 1}, True, ["b"]),
        ("no-lost", {"a": 2}, {"a": 1}, False, ["a"]),
        ("at-most-once", {"a": 2, "b": 1}, {"a": 1, "b": 1}, True, ["a"]),
        ("no-duplicate-rows", {"a": 2, "b": 1}, {"a": 2, "b": 1}, True, ["a"]),
        ("exactly-once-effects", {"a": 1, "b": 1}, {"a": 1}, True, ["b"]),
        ("exactly-once-effects", {"a": 1, "b": 2}, {"a": 1, "b": 1}, True, []),
    ],
)
def test_each_property_names_the_tasks_that_break_it(name, executions, rows, finished, broken):
    found = properties.violations(_history(executions, rows, finished), name)
    assert [v.business_key for v in found] == broken


def test_a_run_no_fault_landed_in_proves_nothing() -> None:
    assert properties.verdict("observed", [], faults_landed=0) == "unknown"
    assert properties.verdict("observed", [], faults_landed=3) == "pass"
    assert properties.verdict("unknown", [], faults_landed=3) == "unknown"
    found = [properties.Violation("t", "k", "2 rows")]
    assert properties.verdict("observed", found, faults_landed=1) == "fail"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--faults", "container,oom"], ["faults='container,oom'", "expected some of"]),
        (["--expect", "no-dupes"], ["expect='no-dupes'", "no-duplicate-rows"]),
        (["--fault", "container"], ["drop --fault"]),
        (["--schedule", "1:container"], ["SECONDS:FAULT@POINT"]),
    ],
)
def test_bad_explore_input_is_one_line(args: list[str], needles: list[str]) -> None:
    assert_clear_error(rig("explore", *args), 2, "error:", *needles)


def test_every_explorable_fault_is_registered() -> None:
    from rig.faults.registry import FAULTS

    assert set(EXPLORABLE) <= set(FAULTS)


def test_shrinking_halves_the_schedule_down_to_the_step_that_fails(monkeypatch) -> None:
    """Only the step at 12 s breaks the property, and it struck no task directly:
    halving finds it within the 8 runs (one step at a time would not), then the
    task count falls to one. No backend: a run is faked as failing when its
    schedule holds that step."""
    from types import SimpleNamespace

    from rig import explore
    from rig.settings import make_settings

    steps = [Step(float(at), "container", "after_commit") for at in range(1, 17)]
    culprit = Step(12.0, "container", "after_commit")
    tried: list[tuple[list[Step], int]] = []

    def fake_run(runner, name, settings, schedule, duration, expect, progress):
        tried.append((schedule, settings.tasks))
        return SimpleNamespace(verdict="fail" if culprit in schedule else "pass")

    monkeypatch.setattr(explore, "_rebased", lambda part: part)  # keep times comparable
    monkeypatch.setattr(explore, "explore_run", fake_run)
    failing = SimpleNamespace(
        landed=steps,
        steps=steps,
        violations=[properties.Violation("t", "k", "2 rows")],
        expect="no-duplicate-rows",
        result=SimpleNamespace(history=History()),
    )
    shrunk = explore.shrink(NO_RUNNER, cast(Any, failing), make_settings(tasks=200), 8, print)
    assert tried[0] == (steps[:8], 200), tried  # the first cut is a half
    assert shrunk.steps == [culprit] and shrunk.tasks == 1, tried
    assert shrunk.runs == len(tried) <= 8, tried


def test_shrinking_tries_the_step_that_struck_a_broken_task_first(monkeypatch) -> None:
    from types import SimpleNamespace

    from rig import explore
    from rig.history import FAULT
    from rig.settings import make_settings

    steps = [Step(float(at), "container", "after_commit") for at in range(1, 7)]
    history = History()
    for number, step in enumerate(steps):  # one fault per landed step, in order
        history.add(FAULT, at=step.at_s, name="container", task_id=f"t{number}")
    tried: list[list[Step]] = []

    def fake_run(runner, name, settings, schedule, duration, expect, progress):
        tried.append(schedule)
        return SimpleNamespace(verdict="fail" if steps[4] in schedule else "pass")

    monkeypatch.setattr(explore, "_rebased", lambda part: part)
    monkeypatch.setattr(explore, "explore_run", fake_run)
    failing = SimpleNamespace(
        landed=steps,
        steps=steps,
        violations=[properties.Violation("t4", "key-4", "2 rows")],
        expect="no-duplicate-rows",
        result=SimpleNamespace(history=history),
    )
    shrunk = explore.shrink(NO_RUNNER, cast(Any, failing), make_settings(tasks=1), 8, print)
    assert tried[0] == [steps[4]] and shrunk.steps == [steps[4]] and shrunk.runs == 1, tried
