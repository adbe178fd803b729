"""What a fault may ask about a crew while it lands (rig.faults.FaultContext):
does a worker answer, are the consumers waiting on the broker, has a worker
taken its task as started, has each been refused a reconnection. Read from
the crew's app, broker, control store and logs, and the run's history."""

from __future__ import annotations

from dataclasses import dataclass

from rig import checker
from rig.backends.base import Backend, last_line
from rig.control import CheckpointReport
from rig.crews import Crew
from rig.events import wait_answering
from rig.history import History
from rig.waiting import until_nothing_missing

# What Celery's consumer logs when the broker refuses its reconnection.
REFUSED = "consumer: Cannot connect to"


@dataclass(frozen=True)
class CrewWatch:
    crew: Crew
    backend: Backend
    history: History

    def answers(self, worker: str, timeout_s: float) -> bool:
        """Does the crew's worker of that name answer a ping within timeout_s?"""
        try:
            wait_answering(self.crew.app, [f"celery@{worker}"], timeout_s)
        except TimeoutError:
            return False
        return True

    def consumers_waiting(self, at_least: int, timeout_s: float) -> bool:
        """Are at least that many of the crew's consumers waiting on the broker
        for their next message (Redis: blocked in BRPOP), within timeout_s?"""

        def missing() -> str:
            waiting = self.crew.broker.consumers_waiting()
            return "" if waiting >= at_least else f"{waiting} of {at_least} waiting"

        return not until_nothing_missing(missing, timeout_s, 0.01)

    def all_waiting(self, timeout_s: float) -> bool:
        """Is every live worker of the crew waiting on the broker, within timeout_s?"""
        return self.consumers_waiting(len(self.live_workers()), timeout_s)

    def live_workers(self) -> list[str]:
        """The crew's workers that have not exited."""
        return sorted(set(self.crew.names) - set(checker.exits(self.history)))

    def accepted(self, report: CheckpointReport, timeout_s: float) -> bool:
        """Has the worker's main process sent task-started for every execution of
        report's task on that worker up to report's, within timeout_s? (The
        ledger has the execution's row before it reaches any point.)"""
        key = (report.task_id, report.hostname)

        def missing() -> str:
            executions = sum(
                1
                for row in self.crew.control.ledger()
                if (row["task_id"], row["hostname"]) == key and row["attempt"] <= report.attempt
            )
            started = sum(
                1
                for event in self.history.celery("task-started")
                if (event["uuid"], event.get("hostname", "")) == key
            )
            return "" if started >= executions else f"{started} of {executions} started"

        return not until_nothing_missing(missing, timeout_s, 0.02)

    def refusals(self) -> dict[str, int]:
        """Per live worker of the crew: how often its consumer was refused a
        connection to the broker, from its log (after the refusal, not before:
        its old connection is closed by then, and kombu's restore of its
        unacknowledged messages has run)."""
        live = self.live_workers()
        logs = self.backend.worker_logs(live)
        return {name: logs.get(name, "").count(REFUSED) for name in live}

    def not_refused_since(self, before: dict[str, int], timeout_s: float) -> str:
        """The live workers not refused again since `before` within timeout_s
        (comma-separated, each with the last line it logged; "" if every one was)."""

        def waiting() -> list[str]:
            now = self.refusals()
            return [name for name, count in now.items() if count <= before.get(name, 0)]

        if not until_nothing_missing(lambda: ", ".join(waiting()), timeout_s, 0.1):
            return ""
        # Why a worker noticed late is not known yet (seen once in CI): what it
        # was doing then goes into the verdict's reasons, where a CI log keeps it.
        names = waiting()
        logs = self.backend.worker_logs(names)
        return ", ".join(
            f"{name} (its log's last line: {last_line(logs.get(name, ''))[:200]!r})"
            for name in names
        )
