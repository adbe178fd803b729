"""Plans (Jepsen's generators): how a run sends its work and lands its
faults, on a ready crew, through a RunContext. The runner knows no plan by
name: a catalog scenario runs OneFault, explore its schedule, and a fault
that lands outside any execution brings its own (kill-fetching)."""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from signal import Signals
from typing import Any, Protocol

from rig import checker, contract
from rig.backends.base import Backend, last_line
from rig.control import CheckpointReport, Control
from rig.crews import Crew
from rig.errors import RigError
from rig.events import wait_answering
from rig.faults import FaultContext, FaultRecord, Heal
from rig.faults.registry import FAULTS
from rig.faults.registry import part as fault_part
from rig.history import CHECKPOINT, FAULT, HEAL, NOTE, PRODUCED, History
from rig.settings import Settings
from rig.target import Target, marked_answer, start_agent
from rig.waiting import until_nothing_missing
from rig.workloads.registry import WORKLOADS

# How long a repeated fault waits for the next execution of the task it hit
# (a requeue after WorkerLostError comes within a few seconds).
REPEAT_WAIT_S = 10.0
HEAL_WAIT_S = 60.0  # the longest a fault lasts is below the checkpoint's park
PRODUCER_WAIT_S = 60.0  # a producer held at its checkpoint is let go within the park
# What Celery's consumer logs when the broker refuses its reconnection.
REFUSED = "consumer: Cannot connect to"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Producer:
    """A producer process (rig.agent produce) and the log its answer ends."""

    task_id: str
    process: subprocess.Popen[bytes]
    log: Path

    def answer(self, control: Control) -> dict[str, Any]:
        """What it published and raised (rig.agent.produce), from its marked line;
        for one a signal killed (fault=sender-kill), what it had published by then."""
        if self.process.returncode is not None and self.process.returncode < 0:
            return {
                "published": control.published(self.task_id),
                "raised": f"killed by {Signals(-self.process.returncode).name}",
            }
        output = self.log.read_text(errors="replace")
        answer: dict[str, Any] | None = marked_answer(output)
        if answer is None:
            raise RigError(f"a producer failed: {last_line(output)}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.unlink(missing_ok=True)


class Sender(Protocol):
    """Processes a workload started that send on their own (beat)."""

    def wait(self, history: History) -> None:
        """Wait, bounded, until they are done; record what they sent."""

    def close(self) -> None:
        """Stop them, and remove what they left."""


@dataclass
class RunContext:
    """One run as a plan and a workload see it: send, arm, inject, heal."""

    name: str
    settings: Settings
    target: Target
    crew: Crew
    backend: Backend
    history: History
    progress: Progress
    database_url: str  # the target's database, as this machine reaches it
    _fault_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _healing: list[threading.Thread] = field(default_factory=list)
    _producers: list[Producer] = field(default_factory=list)
    _senders: list[Sender] = field(default_factory=list)

    def send(self, index: int) -> None:
        """The index-th unit of the settings' workload."""
        WORKLOADS[self.settings.workload].send(self, index)

    def start_process(
        self,
        arguments: list[str],
        log: Path,
        environment: dict[str, str] | None = None,
        session: bool = False,
    ) -> subprocess.Popen[bytes]:
        """`python -m rig.agent ARGUMENTS` in a process of its own, on the rig's
        database and the crew's broker and control store, its output to `log`."""
        urls = {
            contract.BROKER_URL: self.crew.app.conf.broker_url,
            contract.CONTROL_URL: self.crew.control.url,
            contract.DATABASE_URL: self.database_url,
            **self.settings.worker_environment(),
            **(environment or {}),
        }
        return start_agent(arguments, self.target, urls, log, session)

    def start_producer(self, task_id: str, arguments: list[str]) -> None:
        """A producer of task_id (`python -m rig.agent produce ...`): a workload's unit of work."""
        handle, path = tempfile.mkstemp(prefix="celery-rig-producer-", suffix=".log")
        os.close(handle)  # the process writes it through a handle of its own
        log = Path(path)
        self._producers.append(Producer(task_id, self.start_process(arguments, log), log))

    def add_sender(self, sender: Sender) -> None:
        """Processes a workload started that send on their own (beat): waited for with producers."""
        self._senders.append(sender)

    def wait_senders(self) -> None:
        """Wait, bounded, for every producer, and record what each published and
        raised; one that did not answer (its code did not load) is the run's error.
        Then the same for the other senders (beat)."""
        deadline = time.time() + PRODUCER_WAIT_S
        try:
            for producer in self._producers:
                try:
                    producer.process.wait(max(0.0, deadline - time.time()))
                except subprocess.TimeoutExpired:  # killed below, with any other still running
                    message = f"a producer did not end within {PRODUCER_WAIT_S:g} s"
                    raise TimeoutError(message) from None
                answer = producer.answer(self.crew.control)
                self.history.add(PRODUCED, task_id=producer.task_id, **answer)
                if answer["raised"]:
                    text = f"the producer of {producer.task_id} raised {answer['raised']}"
                    self.history.add(NOTE, text=text)
            for sender in self._senders:
                sender.wait(self.history)
        finally:
            self.stop_senders()

    def stop_senders(self) -> None:
        """Stop every producer and sender still running, at once (the plan failed,
        or the run was interrupted), and remove what they left."""
        for producer in self._producers:
            producer.close()
        self._producers.clear()
        for sender in self._senders:
            sender.close()
        self._senders.clear()

    def parks(self, settings: Settings) -> int:
        """How many executions settings.at holds for the fault: one, unless the
        fault holds more (a broker restart holds every running one)."""
        parks = fault_part(settings.fault, "parks")
        return 1 if parks is None else max(1, parks(settings, self.crew.processes()))

    def arm(self, settings: Settings) -> None:
        """Arm settings.at for the fault: before the tasks it should catch are sent."""
        self.crew.control.arm(settings.at, self.parks(settings))

    def next_fault_id(self) -> str:
        return f"f{next(self._fault_ids)}"

    def inject(
        self, settings: Settings, wait_s: float, arm_next: bool = False
    ) -> FaultRecord | None:
        """Land settings.fault on the execution parked at the armed settings.at (or
        the next to arrive within wait_s), and start its heal's timer; None if no
        execution came. `arm_next`: arm the point again before the fault lands, so
        the execution it brings back (a requeue after a kill) parks however soon
        it comes."""
        report = self.crew.control.wait_checkpoint(settings.at, timeout_s=wait_s)
        if report is None:
            self.crew.control.disarm(settings.at)  # so no later execution parks unasked
            self.history.add(NOTE, text=f"no task reached {settings.at} within {wait_s:g} s")
            return None
        self.history.add(CHECKPOINT, at=report.reported_at, **report.as_dict())
        if arm_next:
            self.arm(settings)
        context = FaultContext(
            self.next_fault_id(),
            self.backend,
            self.crew.control,
            settings,
            report,
            settings.park_s(),
            self.parks(settings),
            answers=self._answers,
            all_waiting=self._all_waiting,
            accepted=self._accepted,
            refusals=self._refusals,
            not_refused_since=self._not_refused_since,
        )
        started = FAULTS[settings.fault].start(context)
        self.history.add(FAULT, at=started.confirmed_at or time.time(), **started.as_dict())
        self._heal_later(context, started)
        return started

    def _answers(self, worker: str, timeout_s: float) -> bool:
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

    def _all_waiting(self, timeout_s: float) -> bool:
        """Is every live worker of the crew waiting on the broker, within timeout_s?"""
        return self.consumers_waiting(len(self._live_workers()), timeout_s)

    def _live_workers(self) -> list[str]:
        """The crew's workers that have not exited."""
        return sorted(set(self.crew.names) - set(checker.exits(self.history)))

    def _accepted(self, report: CheckpointReport, timeout_s: float) -> bool:
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

    def _refusals(self) -> dict[str, int]:
        """Per live worker of the crew: how often its consumer was refused a
        connection to the broker, from its log (after the refusal, not before:
        its old connection is closed by then, and kombu's restore of its
        unacknowledged messages has run)."""
        live = self._live_workers()
        logs = self.backend.worker_logs(live)
        return {name: logs.get(name, "").count(REFUSED) for name in live}

    def _not_refused_since(self, before: dict[str, int], timeout_s: float) -> str:
        """The live workers not refused again since `before` within timeout_s
        (comma-separated; "" if every one was)."""

        def missing() -> str:
            now = self._refusals()
            waiting = [name for name, count in now.items() if count <= before.get(name, 0)]
            return ", ".join(waiting)

        return until_nothing_missing(missing, timeout_s, 0.1)

    def _heal_later(self, context: FaultContext, fault: FaultRecord) -> None:
        """Heal a fault that lasts once its time from its checkpoint is up, on a
        thread of its own, so the plan may land the next fault meanwhile; heal
        any other at once (a restart after a kill), before inject returns."""
        heal = fault_part(context.settings.fault, "heal")  # a kill has nothing to undo
        if heal is None:
            return
        lasts = fault_part(context.settings.fault, "lasts")
        if lasts is None:
            self._record_heal(heal(context, fault))
            return
        due = fault.checkpoint_at + lasts(context.settings)

        def heal_when_due() -> None:
            time.sleep(max(0.0, due - time.time()))
            try:
                self._record_heal(heal(context, fault))
            except Exception as error:  # noqa: BLE001 - a failed heal is recorded, not raised
                self.history.add(NOTE, text=f"{fault.id} {fault.name}: heal failed: {error}")

        thread = threading.Thread(target=heal_when_due, name=f"heal-{fault.id}", daemon=True)
        thread.start()
        self._healing.append(thread)

    def _record_heal(self, healed: Heal | None) -> None:
        if healed is not None:
            self.history.add(HEAL, at=healed.healed_at, **healed.as_dict())

    def wait_healed(self) -> None:
        """Wait, bounded, for every heal started so far."""
        deadline = time.time() + HEAL_WAIT_S
        for thread in self._healing:
            thread.join(max(0.0, deadline - time.time()))
        still = [thread.name for thread in self._healing if thread.is_alive()]
        if still:
            raise TimeoutError(f"{', '.join(still)} not done within {HEAL_WAIT_S:g} s")


class Plan(Protocol):
    """How a run sends its work and lands its faults, on a ready crew."""

    def execute(self, run: RunContext) -> None: ...


@dataclass(frozen=True)
class OneFault:
    """A catalog scenario: the checkpoint armed first, every task sent at once,
    then the one fault on the first execution to reach it, healed before the
    next (a task that dies every time is hit fault_times times in turn)."""

    name: str
    settings: Settings

    def execute(self, run: RunContext) -> None:
        settings = self.settings
        if settings.fault != "none":
            run.arm(settings)
        run.progress(f"{self.name}: sending {settings.tasks} task(s)")
        for index in range(settings.tasks):
            run.send(index)
        if settings.fault == "none":
            return
        run.progress(f"{self.name}: waiting for a task at {settings.at}")
        landed = run.inject(settings, wait_s=30, arm_next=settings.fault_times > 1)
        run.wait_healed()
        # A task that dies every time: each next execution that reaches the point
        # is hit too, until fault_times, or until none comes (the broker gave up).
        # The point is armed again before each fault lands: a requeued message can
        # reach it again before this loop would come round.
        for hit in range(2, settings.fault_times + 1):
            if landed is None:
                break
            run.progress(f"{self.name}: waiting for execution {hit} at {settings.at}")
            landed = run.inject(settings, wait_s=REPEAT_WAIT_S, arm_next=hit < settings.fault_times)
            run.wait_healed()
