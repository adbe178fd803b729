"""Properties that must hold over a whole run (explore's --expect), and the
tasks that break them. Pure: reads a History, like the checker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rig.checker import (
    OUTBOUND,
    Outcome,
    Verdict,
    executions_by_task,
    repeated_effects,
    rows_per_key,
)
from rig.history import SENT, History


@dataclass(frozen=True)
class Violation:
    task_id: str
    business_key: str
    what: str  # in words: "ran 2 times", "2 rows"


@dataclass(frozen=True)
class Facts:
    """Per sent task: its executions and its key's rows."""

    sent: list[dict[str, Any]]
    executions: dict[str, list[dict[str, Any]]]
    rows: Counter[str]


def facts(history: History) -> Facts:
    sent = [event.data for event in history.events(SENT)]
    return Facts(sent, executions_by_task(history), rows_per_key(history))


def _no_lost(f: Facts, task: dict[str, Any]) -> str:
    runs = f.executions[task["task_id"]]
    if any(run["finished_at"] for run in runs):
        return ""
    return "never completed" + (f" (ran {len(runs)} times)" if runs else ", never ran")


def _at_most_once(f: Facts, task: dict[str, Any]) -> str:
    runs = len(f.executions[task["task_id"]])
    return f"ran {runs} times" if runs > 1 else ""


def _no_duplicate_rows(f: Facts, task: dict[str, Any]) -> str:
    rows = f.rows[task["business_key"]]
    return f"{rows} rows" if rows > 1 else ""


def _exactly_once_effects(f: Facts, task: dict[str, Any]) -> str:
    """One row for its key, and no HTTP call or email had its effect twice."""
    rows = f.rows[task["business_key"]]
    runs = {task["task_id"]: f.executions[task["task_id"]]}
    repeats = {kind: repeated_effects(runs, kind, effect) for kind, effect in OUTBOUND.items()}
    problems = [f"{rows} rows"] if rows != 1 else []
    problems += [f"{n} of its {kind} again" for kind, n in repeats.items() if n]
    return ", ".join(problems)


# name -> (what it promises, the test of one task; "" when it holds)
PROPERTIES: dict[str, tuple[str, Callable[[Facts, dict[str, Any]], str]]] = {
    "no-lost": ("every task completes", _no_lost),
    "at-most-once": ("no task runs more than once", _at_most_once),
    "no-duplicate-rows": ("no business key has more than one row", _no_duplicate_rows),
    "exactly-once-effects": (
        "every business key has exactly one row, and no HTTP call or email happens twice",
        _exactly_once_effects,
    ),
}
NEEDS_ROWS = {"no-duplicate-rows", "exactly-once-effects"}


def violations(history: History, name: str) -> list[Violation]:
    f = facts(history)
    test = PROPERTIES[name][1]
    found = []
    for task in f.sent:
        what = test(f, task)
        if what:
            found.append(Violation(task["task_id"], task["business_key"], what))
    return found


def verdict(base: Verdict, found: list[Violation], faults_landed: int) -> Verdict:
    """A run's verdict against a property: the checker's unknown or error stand; a
    run no fault landed in proves nothing."""
    if base in ("error", "unknown"):
        return base
    if found:
        return "fail"
    return "pass" if faults_landed else "unknown"


def judge(outcome: Outcome, found: list[Violation], faults_landed: int) -> Outcome:
    """The checker's outcome of a run, judged against a property as well: the
    verdict (verdict() above) and, as reasons, the tasks that break it."""
    reasons = [f"{v.business_key}: {v.what}" for v in found[:20]]
    if len(found) > 20:
        reasons.append(f"... and {len(found) - 20} more")
    judged = verdict(outcome.verdict, found, faults_landed)
    if judged == "unknown" and not faults_landed:
        reasons.append("no fault of the schedule landed")
    return replace(outcome, verdict=judged, reasons=[*outcome.reasons, *reasons])
