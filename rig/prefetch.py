"""Prefetch fairness from Celery's task events: a pure checker, no broker, no Docker.

A task is *reserved* from its task-received to its task-started. It is
*held behind* another task while its worker is running something else
during that reservation (the seed's RECEIVED state). The wait is *unfair*
for as long as another worker that consumes the same queue sits idle.
Hand-off from the consumer to the pool process (milliseconds, no other
task running) is therefore never counted as unfair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FINISHING_EVENTS = ("task-succeeded", "task-failed", "task-rejected", "task-revoked")


@dataclass(frozen=True)
class TaskSpan:
    task_id: str
    kind: str  # "long", "short", or a task name: whatever the workload grouped it by
    worker: str
    queue: str
    sent_at: float
    received_at: float
    started_at: float
    finished_at: float

    @property
    def reserved_s(self) -> float:
        return max(0.0, self.started_at - self.received_at)

    @property
    def run_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class SentTask:
    task_id: str
    kind: str
    queue: str
    sent_at: float


@dataclass
class FairnessMetrics:
    unfair_wait_s: float
    held_behind: int  # tasks that sat reserved behind another running task
    held_behind_s: float
    max_held_by_one_worker: int
    makespan_s: float
    utilisation: dict[str, float]
    incomplete: int  # sent tasks that never finished: the metrics are then partial
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)


def spans_from_events(sent: list[SentTask], events: Iterable[dict[str, Any]]) -> list[TaskSpan]:
    """Pair each sent task with its received, started and finishing events.

    The span belongs to the worker that started the task, with that worker's
    task-received; a message restored by Redis and fetched again elsewhere
    would otherwise mix two workers' events into one span.
    """
    by_task: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event.get("uuid"):
            by_task.setdefault(event["uuid"], []).append(event)
    spans = []
    for task in sent:
        seen = by_task.get(task.task_id, [])
        started = next((e for e in seen if e["type"] == "task-started"), None)
        if started is None:
            continue
        worker = started["hostname"]
        on_worker = [e for e in seen if e.get("hostname") == worker]
        received = next((e for e in on_worker if e["type"] == "task-received"), None)
        finished = next((e for e in on_worker if e["type"] in FINISHING_EVENTS), None)
        if received is None or finished is None:
            continue
        spans.append(
            TaskSpan(
                task_id=task.task_id,
                kind=task.kind,
                worker=worker,
                queue=task.queue,
                sent_at=task.sent_at,
                received_at=received["timestamp"],
                started_at=started["timestamp"],
                finished_at=finished["timestamp"],
            )
        )
    return spans


Interval = tuple[float, float]


def _overlap(intervals: list[Interval], start: float, end: float) -> list[Interval]:
    return [(max(a, start), min(b, end)) for a, b in intervals if a < end and b > start]


def _busy(spans: list[TaskSpan], worker: str) -> list[Interval]:
    return [(s.started_at, s.finished_at) for s in spans if s.worker == worker]


def _union_seconds(intervals: list[Interval]) -> float:
    """Seconds covered by at least one interval (overlaps counted once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _covered(point: float, intervals: list[Interval]) -> bool:
    return any(a <= point < b for a, b in intervals)


def _unfair_seconds(
    blocked: list[Interval], idle_candidates: dict[str, list[Interval]], window: Interval
) -> float:
    """Seconds of `blocked` during which some candidate worker was running nothing."""
    total = 0.0
    for start, end in blocked:
        # Between consecutive breakpoints every worker's state is constant.
        points = {start, end}
        for intervals in idle_candidates.values():
            for a, b in _overlap(intervals, start, end):
                points |= {a, b}
        ordered = sorted(points)
        for a, b in zip(ordered, ordered[1:], strict=False):
            middle = (a + b) / 2
            in_run = window[0] <= middle <= window[1]
            if in_run and any(not _covered(middle, busy) for busy in idle_candidates.values()):
                total += b - a
    return total


def max_held(spans: list[TaskSpan]) -> int:
    """The most tasks one worker held at once, received and not yet finished."""
    best = 0
    for worker in {s.worker for s in spans}:
        # Tuples sort by time, then -1 before 1: a finish before a receive at a tie.
        changes = sorted(
            [(s.received_at, 1) for s in spans if s.worker == worker]
            + [(s.finished_at, -1) for s in spans if s.worker == worker]
        )
        held = 0
        for _, delta in changes:
            held += delta
            best = max(best, held)
    return best


def measure(spans: list[TaskSpan], consumers: dict[str, set[str]], sent: int) -> FairnessMetrics:
    """The fairness metrics of one burst; `consumers` maps each worker to its queues."""
    if not spans:
        return FairnessMetrics(0.0, 0, 0.0, 0, 0.0, {}, incomplete=sent)
    window = (min(s.sent_at for s in spans), max(s.finished_at for s in spans))
    makespan = window[1] - window[0]
    busy = {worker: _busy(spans, worker) for worker in consumers}
    per_kind: dict[str, dict[str, float]] = {}
    for span in spans:
        running_before = [
            (s.started_at, s.finished_at)
            for s in spans
            if s.worker == span.worker and s.task_id != span.task_id
        ]
        blocked = _overlap(running_before, span.received_at, span.started_at)
        blocked_s = sum(b - a for a, b in blocked)
        others = {
            worker: intervals
            for worker, intervals in busy.items()
            if worker != span.worker and span.queue in consumers[worker]
        }
        task_unfair = _unfair_seconds(blocked, others, window)
        kind = per_kind.setdefault(
            span.kind, {"tasks": 0, "held_behind": 0, "held_behind_s": 0.0, "unfair_wait_s": 0.0}
        )
        kind["tasks"] += 1
        kind["held_behind"] += blocked_s > 0
        kind["held_behind_s"] += blocked_s
        kind["unfair_wait_s"] += task_unfair
    utilisation = {
        worker: (_union_seconds(intervals) / makespan if makespan else 0.0)
        for worker, intervals in busy.items()
    }
    return FairnessMetrics(
        unfair_wait_s=sum(kind["unfair_wait_s"] for kind in per_kind.values()),
        held_behind=int(sum(kind["held_behind"] for kind in per_kind.values())),
        held_behind_s=sum(kind["held_behind_s"] for kind in per_kind.values()),
        max_held_by_one_worker=max_held(spans),
        makespan_s=makespan,
        utilisation=utilisation,
        incomplete=sent - len(spans),
        per_kind=per_kind,
    )


def throughput(spans: list[TaskSpan]) -> float:
    """Tasks per second over a burst: from the first send to the last finish."""
    if not spans:
        return 0.0
    elapsed = max(s.finished_at for s in spans) - min(s.sent_at for s in spans)
    return len(spans) / elapsed if elapsed > 0 else 0.0
