"""Turns a history into counts and a verdict. Pure: no Docker, no network.

The write ledger (one record per execution, kept by the workers' agent in the
rig's control store) is the ground truth
for how often a task ran; Celery events tell what failed; the fault records
say whether each fault landed inside its window. A run whose fault did not
land, or that never settled, is "unknown", never "pass"; a run that crashed
is "error", with the crash's message.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from rig.errors import BadInput
from rig.history import (
    BACKEND,
    BROKER,
    EFFECTS,
    ERROR,
    FAULT,
    LEDGER,
    PRODUCED,
    ROW,
    SENT,
    SETTLED,
    History,
)

Verdict = Literal["pass", "fail", "unknown", "observed", "error"]


@dataclass(frozen=True)
class Counts:
    sent: int = 0
    executions: int = 0
    completed: int = 0
    lost: int = 0
    never_ran: int = 0  # lost before any execution: from the queue, or never enqueued
    never_sent: int = 0  # a producer ended without publishing its task (the broker away); also lost
    redelivered: int = 0
    duplicated_work: int = 0
    duplicate_rows: int = 0
    missing_rows: int = 0
    failed: int = 0
    stopped_by_constraint: int = 0  # executions whose duplicate write a constraint refused
    retried: int = 0  # executions that asked to be retried (self.retry): ended in RETRY
    dead_lettered: int = 0  # messages the broker gave up on (a delivery-limit); also lost
    stranded: int = 0  # messages left on the broker once every worker had exited; also lost
    # Messages left queued while live workers ran nothing for settle.STOPPED_CONSUMING_S:
    # a worker that stopped consuming (celery#8030); also lost.
    unconsumed: int = 0
    workers_crashed: int = 0  # workers that exited during the run with no fault aimed at them
    external_calls: int = 0  # outbound HTTP calls the rig's sink answered (rig.outbound)
    # One logical call (a task's n-th call of a method on a host and path) that
    # had an effect in more than one execution: the second charge. A repeat the
    # sink answered from an idempotency key had none.
    duplicate_external_effects: int = 0
    emails: int = 0  # messages handed to the rig's mail backend
    duplicate_emails: int = 0  # one task's n-th email to the same recipients and subject, again
    # Countdown tasks whose first execution started more than LATE_S past their
    # due time: held through a visibility timeout or a worker's restart.
    ran_late: int = 0
    # Pool processes (worker, pid) that ran an execution: how often the pools
    # were recycled (worker_max_tasks_per_child, worker_max_memory_per_child).
    pool_processes: int = 0
    # A schedule slot (an entry's n-th due run, rig.workloads.beat) whose task
    # completed from more than one message: the periodic job ran twice.
    duplicate_scheduled_runs: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


COUNT_NAMES = tuple(f.name for f in fields(Counts))
# A countdown task that starts this long past its due time waited for something
# other than its ETA (a worker restarts in about 3 s; a visibility timeout is longer).
LATE_S = 2.0
# An expected count is a number, or an inclusive [low, high] range where
# Celery itself does not fix the number (a concurrent redelivery may repeat).
Expected = int | tuple[int, int]


def make_expectation(**expected: Any) -> dict[str, Expected]:
    """Validate an expectation: known count names, whole numbers or [low, high]."""
    result: dict[str, Expected] = {}
    for name, value in expected.items():
        if name not in COUNT_NAMES:
            raise BadInput(
                f"unknown count {name!r} in expectation; known: {', '.join(COUNT_NAMES)}"
            )
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            result[name] = value
        elif (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1]
        ):
            result[name] = (value[0], value[1])
        else:
            raise BadInput(f"expectation {name}={value!r}: expected a whole number or [low, high]")
    return result


def _shown(expected: Expected) -> str:
    return str(list(expected)) if isinstance(expected, tuple) else str(expected)


def matches(observed: int, expected: Expected) -> bool:
    if isinstance(expected, tuple):
        return expected[0] <= observed <= expected[1]
    return observed == expected


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    counts: Counts
    reasons: list[str] = field(default_factory=list)
    redelivery_latency_s: list[float] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)


def executions_by_task(history: History) -> dict[str, list[dict[str, Any]]]:
    """The ledger's records, grouped by task id, in the order they started."""
    executions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in (e.data for e in history.events(LEDGER)):
        executions[row["task_id"]].append(row)
    return executions


def rows_per_key(history: History) -> Counter[str]:
    """Rows per business key, from the effects read after the run."""
    rows: Counter[str] = Counter()
    for row in (e.data for e in history.events(ROW)):
        rows[row["business_key"]] += row.get("count", 1)  # one event per row in older runs
    return rows


def count(history: History) -> Counts:
    sent = [e.data for e in history.events(SENT)]
    task_ids = {s["task_id"] for s in sent}
    attempts = {t: rows for t, rows in executions_by_task(history).items() if t in task_ids}
    completed_ids = {t for t, rows in attempts.items() if any(r["finished_at"] for r in rows)}
    # Failed for good: a failure event and no execution that completed later.
    failed_ids = ({c["uuid"] for c in history.celery("task-failed")} & task_ids) - completed_ids
    rows = rows_per_key(history)
    # Without an effects source (a user's task run with no --effects) there are
    # no rows to count, rather than every key missing.
    keys = {s["business_key"] for s in sent} if rows_counted(history) else set()
    return Counts(
        sent=len(sent),
        executions=sum(len(rows) for rows in attempts.values()),
        completed=len(completed_ids),
        lost=len(task_ids - completed_ids),
        never_ran=len(task_ids - set(attempts)),
        never_sent=len(never_sent(history)),
        redelivered=sum(max(0, len(rows) - 1) for rows in attempts.values()),
        duplicated_work=sum(
            1 for rows in attempts.values() if sum(1 for r in rows if r["written_at"]) > 1
        ),
        duplicate_rows=sum(max(0, n - 1) for key, n in rows.items() if key in keys),
        missing_rows=sum(1 for key in keys if rows[key] == 0),
        failed=len(failed_ids),
        stopped_by_constraint=sum(
            1 for rows in attempts.values() for r in rows if r.get("integrity_errors")
        ),
        retried=sum(1 for rows in attempts.values() for r in rows if r.get("state") == "RETRY"),
        dead_lettered=sum(e.data["dead_lettered"] for e in history.events(BROKER)),
        stranded=sum(e.data.get("stranded", 0) for e in history.events(BROKER)),
        unconsumed=sum(e.data.get("unconsumed", 0) for e in history.events(BROKER)),
        workers_crashed=len(crashed_workers(history)),
        external_calls=sum(len(r.get("calls", [])) for rows in attempts.values() for r in rows),
        duplicate_external_effects=repeated_effects(attempts, "calls", call_effect),
        emails=sum(len(r.get("emails", [])) for rows in attempts.values() for r in rows),
        duplicate_emails=repeated_effects(attempts, "emails", email_effect),
        duplicate_scheduled_runs=repeated_slots(sent, completed_ids),
        ran_late=ran_late(sent, attempts),
        pool_processes=len(
            {(r["hostname"], r.get("pid")) for rows in attempts.values() for r in rows}
        ),
    )


def ran_late(sent: list[dict[str, Any]], attempts: dict[str, list[dict[str, Any]]]) -> int:
    """Tasks sent with a due time whose first execution started LATE_S past it."""
    return sum(
        1
        for s in sent
        if s.get("due_at")
        and attempts.get(s["task_id"])
        and attempts[s["task_id"]][0]["started_at"] > s["due_at"] + LATE_S
    )


def repeated_slots(sent: list[dict[str, Any]], completed_ids: set[str]) -> int:
    """For each schedule slot, the messages of it whose task completed, beyond the first."""
    runs: Counter[str] = Counter(
        s["slot"] for s in sent if s.get("slot") and s["task_id"] in completed_ids
    )
    return sum(n - 1 for n in runs.values())


def call_effect(call: dict[str, Any]) -> tuple[str, ...] | None:
    """What makes two HTTP calls the same logical call; None: no effect (a replayed key)."""
    return None if call.get("replayed") else (call["method"], call["host"], call["path"])


def email_effect(email: dict[str, Any]) -> tuple[str, ...] | None:
    return (",".join(email["to"]), email["subject"])


# The outbound effects, each by the ledger record's list and what makes two the same.
OUTBOUND = {"calls": call_effect, "emails": email_effect}


def repeated_effects(
    attempts: dict[str, list[dict[str, Any]]],
    kind: str,
    effect_of: Callable[[dict[str, Any]], tuple[str, ...] | None],
) -> int:
    """Effects one task had more than once: for each task, each execution's
    n-th effect of a kind (the same call, the same email) counts once per
    execution beyond the first that had it."""
    repeats = 0
    for rows in attempts.values():
        executions_with: Counter[tuple[Any, ...]] = Counter()
        for row in rows:
            seen: Counter[tuple[str, ...]] = Counter()
            for item in row.get(kind, []):
                effect = effect_of(item)
                if effect is not None:
                    seen[effect] += 1
                    executions_with[(effect, seen[effect])] += 1
        repeats += sum(n - 1 for n in executions_with.values())
    return repeats


def refused_connections(history: History) -> list[str]:
    """One line per connection a task tried outside the rig, which the guard refused."""
    return [
        f"task {row['task_id']} tried to connect to {refused['address']}, which is not one of "
        "the rig's services: refused (the rig's sink answers outbound HTTP made through "
        "urllib3, as requests does, or httpx)"
        for row in (e.data for e in history.events(LEDGER))
        for refused in row.get("refused", [])
    ]


def never_sent(history: History) -> set[str]:
    """Task ids whose producer ended without the broker taking their message:
    the order committed, its task never sent (a publish that raised)."""
    return {
        e.data["task_id"]
        for e in history.events(PRODUCED)
        if e.data["task_id"] not in e.data.get("published", [])
    }


def exits(history: History) -> dict[str, float]:
    """Each worker whose last word from its backend, before the run settled, is
    that it died or exited, and when."""
    settled = [e.at for e in history.events(SETTLED)]
    last: dict[str, tuple[str, float]] = {}
    for event in history.events(BACKEND):
        if not settled or event.at <= settled[-1]:
            last[event.data["worker"]] = (event.data.get("action", ""), event.at)
    return {worker: at for worker, (action, at) in last.items() if action in ("die", "exit")}


def crashed_workers(history: History) -> set[str]:
    """Workers that exited with no fault aimed at them: on their own (an
    unrecoverable error, such as RabbitMQ closing a channel past consumer_timeout)."""
    aimed = {str(e.data.get("target", "")).split(" ")[0] for e in history.events(FAULT)}
    return set(exits(history)) - aimed


def rows_counted(history: History) -> bool:
    """Were the effects read (the built-in tasks' tables, or --effects)?"""
    return bool(history.events(EFFECTS) or history.events(ROW))


def silenced(row: dict[str, Any], history: History) -> bool:
    """An unfinished execution whose worker died after it began: nobody will
    report on it (no Celery event, no ledger update), whichever fault it was."""
    return not row["finished_at"] and died_after(history, row["hostname"], row["started_at"])


def died_after(history: History, hostname: str, at: float) -> bool:
    """The worker of this node name (celery@<worker>) died or exited at or after `at`."""
    worker = hostname.split("@", 1)[-1]
    return any(
        e.data.get("worker") == worker and e.at >= at
        for e in history.events(BACKEND)
        if e.data.get("action") in ("die", "exit")
    )


def reported_failed(row: dict[str, Any], history: History) -> bool:
    """An unfinished execution whose worker reported its task failed or rejected
    after it began: its process died (a pool-child kill, the OOM killer, a hard
    time limit) and the worker lives on to say so."""
    if row["finished_at"]:
        return False
    return any(
        event["uuid"] == row["task_id"]
        and event.get("hostname") == row["hostname"]
        and event.get("timestamp", 0) >= row["started_at"]
        for kind in ("task-failed", "task-rejected")
        for event in history.celery(kind)
    )


def redelivery_latencies(history: History) -> list[float]:
    """Seconds from each landed fault to the start of the next execution of the
    task it hit, when that execution did not finish. Measured from when the
    fault was issued: its confirmation lags the death (a RabbitMQ requeue can
    start the next execution before the rig has seen the exit)."""
    ledger = [e.data for e in history.events(LEDGER)]
    unfinished = {(row["task_id"], row["attempt"]) for row in ledger if not row["finished_at"]}
    latencies = []
    for fault in (e.data for e in history.events(FAULT)):
        hit = (fault.get("task_id"), fault.get("attempt"))
        if not fault.get("landed") or hit not in unfinished:
            continue
        later = [
            row["started_at"]
            for row in ledger
            if row["task_id"] == fault["task_id"] and row["attempt"] > fault["attempt"]
        ]
        if later:
            issued = fault.get("issued_at") or fault["confirmed_at"]  # older histories
            latencies.append(round(min(later) - issued, 3))
    return latencies


def _unknown_reasons(history: History, counts: Counts, fault_expected: bool) -> list[str]:
    reasons = []
    faults = [e.data for e in history.events(FAULT)]
    if fault_expected and not faults:
        reasons.append("no fault was injected: no task reached the armed checkpoint")
    reasons += [
        f"fault {f['name']} on {f['target']} did not land in its window: {f.get('detail', '')}"
        for f in faults
        if not f.get("landed")
    ]
    settled = [e.data for e in history.events(SETTLED)]
    if not settled or not settled[-1]["settled"]:
        reason = settled[-1]["reason"] if settled else "the run was not waited for"
        reasons.append(f"the run did not settle: {reason}")
    # Nothing ran proves nothing, unless a fault that landed is why (a message
    # killed on its way to a worker), or the workers that took it died of it.
    landed = any(f.get("landed") for f in faults)
    if counts.sent == 0 or (counts.executions == 0 and not landed and not counts.workers_crashed):
        reasons.append("vacuous run: nothing was sent or nothing ran")
    return reasons


def check(
    history: History, expectation: dict[str, Expected] | None, fault_expected: bool
) -> Outcome:
    """Counts, then the verdict: unknown if the run proves nothing, else compare."""
    counts = count(history)
    latencies = redelivery_latencies(history)
    faults = [e.data for e in history.events(FAULT)]
    crashes = [e.data["message"] for e in history.events(ERROR)] + refused_connections(history)
    if crashes:
        return Outcome("error", counts, crashes, latencies, faults)
    unknown = _unknown_reasons(history, counts, fault_expected)
    row_counts = sorted({"duplicate_rows", "missing_rows"} & set(expectation or {}))
    if row_counts and not rows_counted(history):
        unknown.append(f"{', '.join(row_counts)} expected, but no effects were read to count rows")
    if unknown:
        return Outcome("unknown", counts, unknown, latencies, faults)
    if expectation is None:
        return Outcome("observed", counts, [], latencies, faults)
    observed = counts.as_dict()
    mismatches = [
        f"{name}: expected {_shown(want)}, observed {observed[name]}"
        for name, want in expectation.items()
        if not matches(observed[name], want)
    ]
    return Outcome("fail" if mismatches else "pass", counts, mismatches, latencies, faults)
