"""make reproduce: the seed's experiment against the running stack (make up).

Sends 9 early_acknowledge tasks, waits for them, then 9 late_acknowledge
tasks, listening to Celery's events throughout, and prints per task type how
many tasks sat in RECEIVED behind another task, for how long, and how long
another worker sat idle meanwhile. Every figure comes from the events.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import redis
from rich.table import Table

from rig import prefetch
from rig.errors import EnvironmentProblem
from rig.events import EventListener, controller_app, wait_finished
from rig.history import CELERY, History
from rig.terminal import console, progress, run_command
from rig.waiting import until_nothing_missing

TASKS = {
    "early_acknowledge": "exam_app.users.tasks.early_acknowledge",
    "late_acknowledge": "exam_app.users.tasks.late_acknowledge",
}
# Network retrievals do not all take as long; equal durations would keep the
# workers in lockstep and hide what prefetch does at the end of a batch.
DURATIONS_S = (3.0, 0.5, 0.5, 2.0, 0.5, 3.0, 0.5, 1.0, 0.5)


def broker_url() -> str:
    return os.environ.get(
        "CELERY_BROKER_URL", f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/0"
    )


def _stack_workers(url: str) -> list[str]:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        raise EnvironmentProblem(
            f"no broker answers at {url} ({error}); start the stack first: make up"
        ) from None
    control = controller_app(url).control

    workers: list[str] = []

    def too_few_answering() -> bool:
        workers[:] = sorted(name for reply in control.ping(timeout=1.0) or [] for name in reply)
        return len(workers) < 2

    # Workers answer a few seconds after `make up` returns; wait for two, bounded.
    until_nothing_missing(too_few_answering, timeout_s=30)
    if len(workers) < 2:
        raise EnvironmentProblem(
            f"the stack has {len(workers)} worker(s) answering; it needs at least 2 (make up)"
        )
    return workers


def _wait_finished(history: History, sent: list[prefetch.SentTask], deadline_s: float) -> None:
    left = wait_finished(history, {task.task_id for task in sent}, deadline_s)
    if left:
        raise EnvironmentProblem(
            f"{left} task(s) did not finish within {deadline_s:.0f} s: see make logs"
        )


def run_phase(
    url: str, history: History, label: str, workers: list[str]
) -> prefetch.FairnessMetrics:
    app = controller_app(url)
    sent = []
    for index, seconds in enumerate(DURATIONS_S):
        sent_at = time.time()
        result = app.send_task(
            TASKS[label], kwargs={"seconds": seconds, "key": f"reproduce-{label}-{index}"}
        )
        sent.append(prefetch.SentTask(result.id, label, "celery", sent_at))
    _wait_finished(history, sent, 30 + 2 * sum(DURATIONS_S))
    events = [event.data for event in history.events(CELERY)]
    spans = prefetch.spans_from_events(sent, events)
    return prefetch.measure(spans, {worker: {"celery"} for worker in workers}, len(sent))


def table(results: dict[str, prefetch.FairnessMetrics]) -> Table:
    out = Table(title="the seed's reproduction: 9 tasks of each kind on the running stack")
    for column in (
        "task",
        "sat in RECEIVED",
        "RECEIVED wait s",
        "idle worker meanwhile s",
        "max held by one worker",
        "makespan s",
    ):
        out.add_column(column)
    for label, m in results.items():
        out.add_row(
            label,
            f"{m.held_behind} of {m.per_kind.get(label, {}).get('tasks', 0)}",
            f"{m.held_behind_s:.2f}",
            f"{m.unfair_wait_s:.2f}",
            str(m.max_held_by_one_worker),
            f"{m.makespan_s:.2f}",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reproduce", description=__doc__)
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    url = broker_url()
    workers = _stack_workers(url)
    history = History()
    listener = EventListener(controller_app(url), history)
    listener.start()
    results = {}
    try:
        with progress("the seed's experiment") as update:
            for label in TASKS:
                update(f"{label}: {len(DURATIONS_S)} tasks on {len(workers)} workers")
                results[label] = run_phase(url, history, label, workers)
    finally:
        listener.stop()
    console.print(table(results))
    console.print(
        f"workers: {', '.join(workers)}; task durations {', '.join(map(str, DURATIONS_S))} s. "
        "Early ack: a worker fetches the next task while one runs, so it sits in RECEIVED "
        "behind it, even while another worker is idle. Late ack: nothing is fetched until "
        "the running task is acknowledged."
    )
    if args.json:
        figures = {
            label: {
                "tasks": m.per_kind.get(label, {}).get("tasks", 0),
                "sat_in_received": m.held_behind,
                "received_wait_s": round(m.held_behind_s, 3),
                "idle_worker_meanwhile_s": round(m.unfair_wait_s, 3),
                "max_held_by_one_worker": m.max_held_by_one_worker,
                "makespan_s": round(m.makespan_s, 3),
                "incomplete": m.incomplete,
            }
            for label, m in results.items()
        }
        args.json.write_text(json.dumps({"workers": workers, "tasks": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
