"""Plans (Jepsen's generators): how a run sends its work and lands its
faults, on a ready crew, through a RunContext. The runner knows no plan by
name: a catalog scenario runs OneFault, explore its schedule, and a fault
that lands outside any execution brings its own (kill-fetching)."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rig import contract
from rig.backends.base import Backend
from rig.crew_watch import CrewWatch
from rig.crews import Crew
from rig.faults import FaultContext, FaultRecord, Heal
from rig.faults.registry import FAULTS
from rig.faults.registry import part as fault_part
from rig.history import CHECKPOINT, FAULT, HEAL, NOTE, History
from rig.senders import Producer, Sender, Senders
from rig.settings import Settings
from rig.target import Target, start_agent
from rig.workloads.registry import WORKLOADS

# How long a repeated fault waits for the next execution of the task it hit
# (a requeue after WorkerLostError comes within a few seconds).
REPEAT_WAIT_S = 10.0
HEAL_WAIT_S = 60.0  # the longest a fault lasts is below the checkpoint's park
Progress = Callable[[str], None]


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
    _senders: Senders = field(default_factory=Senders)

    @property
    def watch(self) -> CrewWatch:
        """What a fault may ask about the crew while it lands."""
        return CrewWatch(self.crew, self.backend, self.history)

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
        log = self._senders.producer_log(task_id)
        # In a session of its own: a leftover's cleanup kills its group.
        process = self.start_process(arguments, log, session=True)
        self._senders.add_producer(Producer(task_id, process, log))

    def add_sender(self, sender: Sender) -> None:
        """Processes a workload started that send on their own (beat): waited for with producers."""
        self._senders.add_sender(sender)

    def wait_senders(self) -> None:
        """Wait, bounded, for everything the workload started that sends, and
        record what each sent (rig.senders)."""
        self._senders.wait(self.history, self.crew.control)

    def stop_senders(self) -> None:
        """Stop at once what the workload started that sends (the plan failed, or
        the run was interrupted), and remove what it left."""
        self._senders.stop()

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
        watch = self.watch
        context = FaultContext(
            self.next_fault_id(),
            self.backend,
            self.crew.control,
            settings,
            report,
            settings.park_s(),
            self.parks(settings),
            answers=watch.answers,
            all_waiting=watch.all_waiting,
            accepted=watch.accepted,
            refusals=watch.refusals,
            not_refused_since=watch.not_refused_since,
        )
        started = FAULTS[settings.fault].start(context)
        self.history.add(FAULT, at=started.confirmed_at or time.time(), **started.as_dict())
        self._heal_later(context, started)
        return started

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
