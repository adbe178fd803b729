"""When a run is over: nothing queued or unacknowledged, every execution
ended or silenced, every started task in the ledger, and all of it still so
a moment later. The wait is bounded; a run that never settles says why, and
its verdict is `unknown`."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rig import checker
from rig.crews import Crew
from rig.errors import BrokerDown
from rig.history import SENT, SETTLED, History
from rig.settings import Settings
from rig.transports import TRANSPORTS
from rig.waiting import until_nothing_missing

STABLE_S = 0.5  # how long "nothing left to happen" must hold before a run counts as settled
SAY_EVERY_S = 5.0  # a count that only changes is said again this often, not at each change
Progress = Callable[[str], None]


# What a task costs beyond its own seconds on a busy 2-core machine (delivery,
# ack, the ledger), and a new pool process after a recycled one (the project's
# setup). Measured beside a soak: 240 of 300 zero-second tasks, a process
# replaced every 3, in 96 s, when the wait without these ran out.
TASK_OVERHEAD_S = 0.3
PROCESS_START_S = 1.0


def deadline_s(settings: Settings) -> float:
    """The settle wait: the work itself thrice (each task at least its overhead),
    the pool processes recycling starts, its countdown, the transport's redelivery."""
    work_s = settings.tasks * (settings.task_seconds + TASK_OVERHEAD_S) * 3
    recycled = settings.tasks // settings.max_tasks_per_child if settings.max_tasks_per_child else 0
    if settings.max_memory_per_child_mb and settings.allocate_mb:
        recycled = settings.tasks  # each task's peak may be past the limit
    return (
        60
        + work_s
        + recycled * PROCESS_START_S
        + settings.countdown
        + TRANSPORTS[settings.transport].redelivery_wait_s(settings)
    )


# A message waits in the queue while no execution runs anywhere and a worker is
# alive: after this long, that worker has stopped consuming (celery#8030). It is
# longer than a worker's restart on a busy machine (a deploy), so a worker on
# its way back never reaches it.
STOPPED_CONSUMING_S = 30.0


@dataclass
class IdleQueue:
    """How long messages have waited in the queue while nothing ran, as of the
    last look."""

    since: float | None = None
    waited_s: float = 0.0

    def look(self, waiting: int, now: float) -> float:
        """Record what the last look saw (messages waiting while nothing ran); the seconds so."""
        self.since = (self.since or now) if waiting else None
        self.waited_s = now - self.since if self.since is not None else 0.0
        return self.waited_s

    @property
    def stopped_consuming(self) -> bool:
        return self.waited_s >= STOPPED_CONSUMING_S


def unsettled(crew: Crew, history: History, countdown_s: float, idle: IdleQueue) -> str:
    """What the run still waits for, in words, or "" once nothing can happen."""
    due_s = due_in(history, countdown_s)
    if due_s > 0:
        return f"a countdown due in {due_s:.0f} s"
    try:
        pending = crew.broker.pending_messages()
        if pending and not stranded(crew, history):
            if idle.look(queued_while_idle(crew, history), time.time()) >= STOPPED_CONSUMING_S:
                return ""  # the live workers stopped consuming: nothing more will happen
            return f"{pending} message(s) still queued or unacknowledged"
    except BrokerDown:
        return "the broker does not answer"
    idle.look(0, time.time())
    ledger = crew.control.ledger()
    live = running(ledger, history)
    if live:
        return f"{len(live)} execution(s) still running or not yet reported"
    # Early ack acknowledges before the task body runs: a started task can be
    # off the broker and not yet in the ledger. Its task-started says so.
    unrecorded = started_not_recorded(ledger, history)
    if unrecorded:
        return f"{unrecorded} started execution(s) not yet in the ledger"
    # A task neither finished nor failed is lost for good once nothing is
    # queued or unacknowledged: on Redis only those come back.
    return ""


def queued_while_idle(crew: Crew, history: History) -> int:
    """Messages waiting in the queue while no execution runs anywhere; 0 while one
    does (the broker is asked only then)."""
    if running(crew.control.ledger(), history):
        return 0
    return int(crew.broker.ready_messages())


def running(ledger: list[dict[str, Any]], history: History) -> list[dict[str, Any]]:
    """The executions not yet ended, leaving out those that never will (their
    worker was killed, or it reported them failed)."""
    return [
        row
        for row in ledger
        if not row.get("ended_at")
        and not checker.silenced(row, history)
        and not checker.reported_failed(row, history)
    ]


def due_in(history: History, countdown_s: float, now: float | None = None) -> float:
    """Seconds until the last task sent with a countdown is due, 0 once all are:
    until then the broker may hold it where no queue shows it (RabbitMQ's native
    delayed delivery keeps it in its delay exchanges' queues)."""
    sent = [event.at for event in history.events(SENT)]
    if not sent or not countdown_s:
        return 0.0
    return max(0.0, max(sent) + countdown_s - (time.time() if now is None else now))


def stranded(crew: Crew, history: History) -> bool:
    """Every worker of the crew has exited: what the broker holds waits for a
    worker that will not come (the rig does not restart a worker that exits on
    its own)."""
    return set(crew.names) <= set(checker.exits(history))


def stopped_consuming(history: History) -> bool:
    """Did the run settle on live workers that had stopped consuming?"""
    settled = history.events(SETTLED)
    return bool(settled) and bool(settled[-1].data.get("stopped_consuming"))


def started_not_recorded(ledger: list[dict[str, Any]], history: History) -> int:
    """Executions Celery reported started that have no ledger row yet, leaving
    out those whose worker died since: they never will have one (a kill
    between task-started and the agent's first write)."""
    recorded = Counter((row["task_id"], row["hostname"]) for row in ledger)
    started = Counter(
        (event["uuid"], event.get("hostname", ""))
        for event in history.celery("task-started")
        if not checker.died_after(history, event.get("hostname", ""), event.get("timestamp", 0))
    )
    return sum((started - recorded).values())


def _kind(reason: str) -> str:
    """A reason without its counts: "N message(s) still queued ..."."""
    return re.sub(r"\d+", "N", reason)


def wait_settled(crew: Crew, settings: Settings, history: History, progress: Progress) -> None:
    """Wait, bounded, until nothing more can happen; record whether it did settle."""
    idle = IdleQueue()

    def probe() -> str:
        return unsettled(crew, history, settings.countdown, idle)

    reason = wait_quiet(probe, deadline_s(settings), progress)
    if stranded(crew, history):
        quiet = "every worker exited"
    elif idle.stopped_consuming:
        quiet = (
            f"the workers stopped consuming: messages queued {STOPPED_CONSUMING_S:g} s, none ran"
        )
    else:
        quiet = "drained and quiet"
    history.add(
        SETTLED,
        settled=not reason,
        reason=reason or quiet,
        stopped_consuming=not reason and idle.stopped_consuming,
    )


def wait_quiet(probe: Callable[[], str], timeout_s: float, progress: Progress) -> str:
    """Wait until `probe` says nothing for STABLE_S (the broker, the events and
    the ledger are read one after another, not in one snapshot); what it still
    said at the deadline, or "". Progress says what it waits for when that
    changes, and how many are left every few seconds (a log gets a line per
    change of kind, not one per message)."""
    said, said_at = "", 0.0
    calm_since: float | None = None

    def still() -> str:
        nonlocal said, said_at, calm_since
        reason = probe()
        if reason:
            calm_since = None
        elif calm_since is None or time.time() - calm_since < STABLE_S:
            calm_since = calm_since or time.time()
            reason = "settling"
        new_kind = _kind(reason) != _kind(said)
        if reason and (new_kind or (reason != said and time.time() - said_at >= SAY_EVERY_S)):
            progress(f"waiting: {reason}")
            said, said_at = reason, time.time()
        return reason

    return until_nothing_missing(still, timeout_s, interval_s=0.1)
