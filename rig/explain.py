"""A run in plain words, task by task: how often it ran, where, what each
execution wrote and whether that committed, what it called and emailed,
which fault hit it, how many rows its business key has. Pure: reads a
History, like the checker."""

from __future__ import annotations

from typing import Any

from rig.checker import executions_by_task, rows_counted, rows_per_key
from rig.history import FAULT, NOTE, SENT, History


def explain(history: History, only: set[str] | None = None) -> list[str]:
    """Per sent task (or only these task ids), in plain words."""
    ledger = executions_by_task(history)
    faults = {(f.get("task_id"), f.get("attempt")): f for f in _data(history, FAULT)}
    rows = rows_per_key(history)
    counted = rows_counted(history)
    lines = []
    for sent in _data(history, SENT):
        if only is not None and sent["task_id"] not in only:
            continue
        executions = sorted(ledger[sent["task_id"]], key=lambda row: row["attempt"])
        times = "never ran" if not executions else f"ran {_times(len(executions))}"
        lines.append(
            f"task {sent['business_key']} ({sent['task']}, {sent['task_id'][:8]}): {times}"
        )
        for execution in executions:
            fault = faults.get((execution["task_id"], execution["attempt"]))
            lines.append("  " + _execution(execution, fault))
        if counted:
            found = rows.get(sent["business_key"], 0)
            extra = {0: " (missing)", 1: ""}.get(found, f" ({found - 1} too many)")
            lines.append(f"  rows for {sent['business_key']}: {found}{extra}")
    if only is None:  # a worker's own end is part of what happened to every task
        lines += [note["text"] for note in _data(history, NOTE) if note.get("crashed_worker")]
    return lines


def _data(history: History, kind: str) -> list[dict[str, Any]]:
    return [event.data for event in history.events(kind)]


def _times(number: int) -> str:
    return {1: "once", 2: "twice"}.get(number, f"{number} times")


def _execution(row: dict[str, Any], fault: dict[str, Any] | None) -> str:
    worker = row["hostname"].split("@", 1)[-1]
    text = f"#{row['attempt']} on {worker}" + (" (redelivered)" if row["redelivered"] else "")
    writes = row.get("writes") or []
    committed = [w for w in writes if w.get("committed")]
    if committed:
        tables = sorted({f"{w['operation']} {w['table']}" for w in committed})
        text += f": committed {len(committed)} write(s) ({', '.join(tables)})"
    elif writes:
        text += f": {len(writes)} write(s), none committed"
    else:
        text += ": wrote nothing"
    text += "".join(outbound_phrases(row))
    if row.get("integrity_errors"):
        text += f", {row['integrity_errors']} refused by a constraint"
    if fault is not None:
        text += f"; hit by {fault['name']} at {fault.get('point', '?')}"
    if row["finished_at"]:
        text += "; finished"
    elif fault is None:
        text += f"; did not finish ({row.get('state') or 'its worker died'})"
    return text


def outbound_phrases(row: dict[str, Any]) -> list[str]:
    """What an execution sent outside: each HTTP call the sink answered, each email."""
    calls = [
        f", called {c['method']} {c['host']}{c['path']}"
        + (" (answered from its idempotency key)" if c.get("replayed") else "")
        for c in row.get("calls", [])
    ]
    emails = [f", emailed {', '.join(e['to'])}: {e['subject']}" for e in row.get("emails", [])]
    return calls + emails
