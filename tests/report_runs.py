"""Hand-written runs for the report's tests, in both rooms: histories of a
kill and its redelivery, and the results a report is written from."""

from __future__ import annotations

from rig.checker import Counts, Outcome, check, make_expectation
from rig.history import FAULT, LEDGER, ROW, SENT, SETTLED, History
from rig.runner import Result
from rig.settings import make_settings

T0 = 1_700_000_000.0
HEADER = {"backend": "local", "reason": "test", "started": "today", "database": "sqlite"}


def add_attempt(
    history: History, attempt: int, worker: str, start: float, end: float | None
) -> None:
    history.add(
        LEDGER,
        at=T0 + start,
        task_id="t1",
        task_name="create_record",
        business_key="kill-0",
        hostname=f"celery@{worker}",
        pid=40 + attempt,
        attempt=attempt,
        redelivered=attempt > 1,
        started_at=T0 + start,
        written_at=T0 + start + 0.1,
        finished_at=None if end is None else T0 + end,
    )


def killed_then_redelivered() -> History:
    """Late ack, container of w1 killed after the write; w2 runs attempt 2 after the timeout."""
    history = History()
    history.add(SENT, at=T0, task_id="t1", task="create_record", business_key="kill-0")
    add_attempt(history, 1, "w1", 0.05, None)
    history.add(
        FAULT,
        at=T0 + 0.32,
        name="container",
        target="w1",
        action="SIGKILL",
        ends_execution=True,
        task_id="t1",
        attempt=1,
        point="after_commit",
        checkpoint_at=T0 + 0.3,
        confirmed_at=T0 + 0.32,
        landed=True,
        detail="die event, exit code 137",
    )
    add_attempt(history, 2, "w2", 4.9, 5.15)
    for _ in range(2):  # the naive create wrote its row twice
        history.add(ROW, table="users_naiverecord", business_key="kill-0", task_id="t1")
    history.add(SETTLED, at=T0 + 6.0, settled=True, reason="drained and quiet")
    return history


def sample_results() -> tuple[list[Result], list[dict]]:
    history = killed_then_redelivered()
    expect = make_expectation(executions=2, completed=1, lost=0, redelivered=1, duplicate_rows=1)
    settings = make_settings(fault="container")
    killed = Result(
        name="kill_after_commit",
        settings=settings,
        expect=expect,
        outcome=check(history, expect, fault_expected=True),
        history=history,
        seconds=6.2,
    )
    crashed = Result(
        name="crashed_run",
        settings=settings,
        expect=expect,
        outcome=Outcome("error", Counts(), ["boom"]),
        history=History(),
        seconds=0.4,
        worker_logs={"w1": "Traceback: boom\n"},
    )
    skipped = {
        "scenario": "needs_postgres",
        "verdict": "skipped",
        "reasons": ["skipped: needs PostgreSQL"],
        "settings": settings.as_dict(),
        "expected": {},
        "counts": {},
        "seconds": 0.0,
    }
    return [killed, crashed], [skipped]
