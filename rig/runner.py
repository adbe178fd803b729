"""Runs one scenario: workers, workload, fault at its checkpoint, settle, check.

The order matters: the workers answer a ping before anything is sent, the
event listener subscribes before the first task (Redis events are pub/sub),
the checkpoint is armed before any task is sent, and the ledger is read only
once the run has settled. Each scenario's workers (its crew) use their own
Redis database, so the next crew starts while this run waits for its
redelivery, and a crew that is leaving cannot touch the next run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import redis
from celery import Celery

from rig import checker
from rig.backends.base import Backend, Services, WorkerSpec
from rig.checker import Expected, Outcome
from rig.control import PARK_S, Control
from rig.errors import BrokerDown, RigError
from rig.events import EventListener, controller_app, pool_processes, wait_answering
from rig.faults import FaultContext
from rig.faults.registry import FAULTS
from rig.faults.registry import part as fault_part
from rig.history import (
    BROKER,
    CHECKPOINT,
    EFFECTS,
    ERROR,
    FAULT,
    HEAL,
    LEDGER,
    NOTE,
    ROW,
    SENT,
    SETTLED,
    History,
)
from rig.settings import Settings
from rig.store import Store
from rig.target import Target, resolve
from rig.transports import TRANSPORTS
from rig.transports.redis import with_db
from rig.waiting import until_nothing_missing

WORKERS_ONLINE_S = 90.0
# How long a repeated fault waits for the next execution of the task it hit
# (a requeue after WorkerLostError comes within a few seconds).
REPEAT_WAIT_S = 10.0
STABLE_S = 0.5  # how long "nothing left to happen" must hold before a run counts as settled
Progress = Callable[[str], None]


@dataclass
class Result:
    name: str
    settings: Settings
    expect: dict[str, Expected] | None
    outcome: Outcome
    history: History
    seconds: float
    worker_logs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # explore: property, schedule, ...

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "transport": self.settings.transport,
            "verdict": self.outcome.verdict,
            "reasons": self.outcome.reasons,
            "settings": self.settings.as_dict(),
            "expected": {
                k: list(v) if isinstance(v, tuple) else v for k, v in (self.expect or {}).items()
            },
            "counts": self.outcome.counts.as_dict(),
            "faults": [
                {key: f[key] for key in ("name", "target", "action", "landed", "detail")}
                | {"at": f["confirmed_at"], "kill_latency_s": _latency(f)}
                for f in self.outcome.faults
            ],
            "redelivery_latency_s": self.outcome.redelivery_latency_s,
            "effective": effective_options(self.history),
            "seconds": round(self.seconds, 2),
        } | self.extra


def effective_options(history: History) -> dict[str, dict[str, bool]]:
    """How each task really ran (the app's settings, its decorator, the rig's
    overrides), as its workers reported in the ledger."""
    return {
        row["task_name"]: {
            "acks_late": row["acks_late"],
            "reject_on_worker_lost": row["reject_on_worker_lost"],
        }
        for row in (event.data for event in history.events(LEDGER))
        if "acks_late" in row
    }


def _latency(fault: dict[str, Any]) -> float | None:
    """Checkpoint to confirmed end, for a fault that ended its execution at once."""
    if fault.get("confirmed_at") is None or not fault.get("ends_execution"):
        return None
    return round(fault["confirmed_at"] - fault["checkpoint_at"], 4)


@dataclass
class Crew:
    """The workers of one scenario, on a corner of the broker and the control
    store of their own, so the next scenario's crew can start while this one's
    run settles."""

    db: int
    specs: list[WorkerSpec]
    broker: Any  # the transport's Broker (rig.transports)
    control: Control
    app: Celery
    ready: threading.Thread
    error: BaseException | None = None
    _processes: int | None = None

    def processes(self) -> int:
        """How many executions the crew runs at once (asked once, when first needed)."""
        if self._processes is None:
            self._processes = pool_processes(self.app, [s.nodename for s in self.specs])
        return self._processes

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def matches(self, specs: list[WorkerSpec]) -> bool:
        """Started for these specs (same count, target, environments, queues, limits)?"""

        def shape(spec: WorkerSpec) -> tuple[object, ...]:
            return (
                *(spec.transport, spec.broker_setup, spec.environment, spec.queues),
                *(spec.memory_mb, spec.database, spec.project_dir),
            )

        return [shape(s) for s in self.specs] == [shape(s) for s in specs]


class Runner:
    """Runs scenarios one after another on one started backend."""

    def __init__(self, backend: Backend, services: Services) -> None:
        self.backend = backend
        self.services = services
        self._stores: dict[str, Store] = {}  # by target database, each migrated once
        self._brokers: set[str] = set()  # transports whose broker was asked for
        # A crew's slot: Redis' 16 databases, RabbitMQ's 16 virtual hosts; 0 unused.
        self._databases = itertools.cycle(range(1, 16))
        self._crews = itertools.count(1)
        self._next: Crew | None = None
        self._leaving: list[threading.Thread] = []
        # Crews whose run is over, removed once the next run's fault has landed:
        # removing containers meanwhile would slow the engine at the kill.
        self._done: list[Crew] = []
        self.failed_crew_logs: dict[str, str] = {}  # the last crew that did not start

    # --- crews ----------------------------------------------------------
    def start_crew(self, specs: list[WorkerSpec]) -> Crew:
        """Start a crew in the background; its `ready` thread ends once all answer a ping."""
        db, number = next(self._databases), next(self._crews)
        named = [replace(s, name=f"{s.name}-{number}", broker_db=db) for s in specs]
        name, setup = specs[0].transport, specs[0].broker_setup
        transport = TRANSPORTS[name]
        url = transport.crew_url(self.backend.broker_url(name), db)
        # Its own controller app and client: none of their connections outlive the
        # crew (a broker restart leaves dead ones behind).
        app = controller_app(url, owner=f"crew-{number}", queue_type=setup.get("queue_type"))
        control = Control(with_db(self.services.control_url, db))
        broker = transport.Broker(url, self.backend.broker_admin(name))
        crew = Crew(db, named, broker, control, app, threading.Thread())

        def start() -> None:
            try:
                crew.broker.reset(setup)  # before any worker binds its queues here
                crew.control.reset()
                self.backend.start_workers(named)
                nodenames = [s.nodename for s in named]
                failed = lambda: self.backend.failed_start(crew.names)  # noqa: E731
                wait_answering(crew.app, nodenames, WORKERS_ONLINE_S, failed)
            except BaseException as error:  # noqa: BLE001 - handed to whoever takes the crew
                crew.error = error

        crew.ready = threading.Thread(target=start, name=f"crew-{number}", daemon=True)
        crew.ready.start()
        return crew

    def prepare(self, specs: list[WorkerSpec]) -> None:
        """Start the crew the next run will want, unless one like it is already waiting."""
        if self._next is not None and self._next.matches(specs):
            return
        self.dismiss(self._next)
        self._next = self.start_crew(specs)

    def hire(self, specs: list[WorkerSpec]) -> Crew:
        """A ready crew for these specs: the prepared one when it matches, else a new one."""
        crew = self._next if self._next is not None and self._next.matches(specs) else None
        if crew is None:
            self.dismiss(self._next)
            crew = self.start_crew(specs)
        self._next = None
        self.wait_ready(crew)
        return crew

    def wait_ready(self, crew: Crew) -> None:
        """Block until the crew answers; its start's error (a timeout too) is raised here."""
        crew.ready.join(WORKERS_ONLINE_S + 30)
        if crew.ready.is_alive():
            crew.error = TimeoutError(f"crew on database {crew.db} still starting")
        if crew.error is not None:
            # Kept for the run's result: why a worker did not answer is in its log.
            self.failed_crew_logs = self.backend.worker_logs(crew.names)
            self.dismiss(crew)
            raise crew.error

    def dismiss_finished(self) -> None:
        """Remove the crews of runs that are over."""
        while self._done:
            self.dismiss(self._done.pop())

    def dismiss(self, crew: Crew | None) -> None:
        """Remove a crew's workers without making the next run wait for it."""
        if crew is None:
            return

        def leave() -> None:
            crew.ready.join()
            self.backend.stop_workers(crew.names)
            crew.app.close()
            crew.broker.close()
            crew.control.close()

        thread = threading.Thread(target=leave, name="crew-leaving", daemon=True)
        thread.start()
        self._leaving.append(thread)

    # --- one run ----------------------------------------------------------
    def run(
        self,
        name: str,
        settings: Settings,
        expect: dict[str, Expected] | None,
        progress: Progress = lambda _message: None,
        then: Settings | None = None,
        plan: Plan | None = None,
    ) -> Result:
        """Run one scenario; `then` names the next one's settings, whose workers
        start while this run settles; `plan` sends the work and lands the faults
        (default: every task at once, the one fault at its checkpoint). A crash
        is a result (verdict error)."""
        started = time.time()
        history = History()
        logs: dict[str, str] = {}
        crew: Crew | None = None
        self.failed_crew_logs = {}
        store: Store | None = None
        target: Target | None = None
        try:
            target = resolve(settings)
            for note in target.notes:
                history.add(NOTE, text=note)
            store = self.store(target, progress)
            self.broker(settings.transport, progress)
            progress(f"{name}: starting {settings.workers} workers")
            crew = self.hire(worker_specs(settings, target))
            store.reset(target)
            # A fault that lands outside any execution brings its own plan.
            plan = plan or fault_part(settings.fault, "Plan", OneFault)(name, settings)
            self._run_steps(name, settings, target, crew, history, progress, then, plan)
        except TimeoutError as error:
            # A bounded wait ran out: the run proves nothing, and says why.
            history.add(SETTLED, settled=False, reason=str(error))
        except Exception as error:  # noqa: BLE001 - one crashing scenario is a result
            history.add(ERROR, message=one_line(error))
        finally:
            self._collect(crew, store, target, history)
            outcome = checker.check(history, expect, fault_expected=settings.fault != "none")
            if crew is not None:
                if outcome.verdict in ("fail", "unknown", "error"):
                    logs = self.backend.worker_logs(crew.names)
                self.backend.observe(history, [])  # the crew's removal is not part of the run
                self._done.append(crew)
            else:
                logs = self.failed_crew_logs
        return Result(name, settings, expect, outcome, history, time.time() - started, logs)

    def _run_steps(
        self,
        name: str,
        settings: Settings,
        target: Target,
        crew: Crew,
        history: History,
        progress: Progress,
        then: Settings | None,
        plan: Plan,
    ) -> None:
        listener = EventListener(crew.app, history)
        listener.start()
        self.backend.observe(history, crew.names)
        try:
            plan.execute(self, crew, target, history, progress)
            # The faults have landed: earlier crews may go, the next crew may start.
            self.dismiss_finished()
            if then is not None:
                self._prepare_next(then)
            progress(f"{name}: waiting for the run to settle (redelivery, drain)")
            self._wait_settled(crew, settings, history, progress)
        finally:
            listener.stop()

    def send(self, crew: Crew, target: Target, index: int, history: History) -> None:
        """The index-th task of the workload, with its own business key."""
        key, args, kwargs = target.call(index)
        result = crew.app.send_task(target.task_name, args=args, kwargs=kwargs)
        history.add(SENT, task_id=result.id, task=target.task_name, business_key=key)

    @staticmethod
    def parks(crew: Crew, settings: Settings) -> int:
        """How many executions settings.at holds for the fault: one, unless the
        fault holds more (a broker restart holds every running one)."""
        parks = fault_part(settings.fault, "parks")
        return 1 if parks is None else max(1, parks(settings, crew.processes()))

    def arm(self, crew: Crew, settings: Settings) -> None:
        """Arm settings.at for the fault: before the tasks it should catch are sent."""
        crew.control.arm(settings.at, self.parks(crew, settings))

    def inject(self, crew: Crew, settings: Settings, history: History, wait_s: float) -> bool:
        """Land settings.fault on the execution parked at the armed settings.at (or
        the next to arrive within wait_s); heal what it can. False if none came."""
        report = crew.control.wait_checkpoint(settings.at, timeout_s=wait_s)
        if report is None:
            crew.control.disarm(settings.at)  # so no later execution parks unasked
            history.add(NOTE, text=f"no task reached {settings.at} within {wait_s:g} s")
            return False
        history.add(CHECKPOINT, at=report.reported_at, **report.as_dict())
        fault = FAULTS[settings.fault]
        parks = self.parks(crew, settings)
        context = FaultContext(self.backend, crew.control, settings, report, PARK_S, parks)
        started = fault.start(context)
        history.add(FAULT, at=started.confirmed_at or time.time(), **started.as_dict())
        heal = fault_part(settings.fault, "heal")  # a kill has nothing to undo
        healed = heal(context, started) if heal is not None else None
        if healed is not None:
            history.add(HEAL, at=healed.healed_at, **healed.as_dict())
        return True

    def _wait_settled(
        self, crew: Crew, settings: Settings, history: History, progress: Progress
    ) -> None:
        """Wait, bounded, until nothing more can happen; record whether it did settle."""
        deadline_s = 60 + settings.tasks * settings.task_seconds * 3
        deadline_s += TRANSPORTS[settings.transport].redelivery_wait_s(settings)

        def unsettled() -> str:
            try:
                pending = crew.broker.pending_messages()
            except BrokerDown:
                return "the broker does not answer"
            if pending:
                return f"{pending} message(s) still queued or unacknowledged"
            ledger = crew.control.ledger()
            live = [
                row
                for row in ledger
                if not row.get("ended_at")
                and not checker.silenced(row, history)
                and not checker.reported_failed(row, history)
            ]
            if live:
                return f"{len(live)} execution(s) still running or not yet reported"
            # Early ack acknowledges before the task body runs: a started task can
            # be off the broker and not yet in the ledger. Its task-started says so.
            started = len(history.celery("task-started"))
            if len(ledger) < started:
                return f"{started - len(ledger)} started execution(s) not yet in the ledger"
            # A task neither finished nor failed is lost for good once nothing is
            # queued or unacknowledged: on Redis only those come back.
            return ""

        said = ""
        calm_since: float | None = None

        def unsettled_and_said() -> str:
            nonlocal said, calm_since
            reason = unsettled()
            # Settled only once it stays so for STABLE_S: the broker, the events
            # and the ledger are read one after another, not in one snapshot.
            if reason:
                calm_since = None
            elif calm_since is None or time.time() - calm_since < STABLE_S:
                calm_since = calm_since or time.time()
                reason = "settling"
            if reason and reason != said:  # say what it waits for, once per change
                progress(f"waiting: {reason}")
                said = reason
            return reason

        reason = until_nothing_missing(unsettled_and_said, deadline_s, interval_s=0.1)
        history.add(SETTLED, settled=not reason, reason=reason or "drained and quiet")

    def broker(self, transport: str, progress: Progress) -> str:
        """The transport's broker URL; the first time, it starts (RabbitMQ: seconds)."""
        if transport not in self._brokers:
            progress(f"starting the {transport} broker")
            self._brokers.add(transport)
        return self.backend.broker_url(transport)

    def store(self, target: Target, progress: Progress) -> Store:
        """The target's database, created and migrated on first use, and its
        extra packages where workers need them (built once per content)."""
        if target.requirements:
            progress(f"making {target.requirements} available to the workers")
            self.backend.prepare_project(target.requirements)
        store = self._stores.get(target.database)
        if store is None:
            progress(f"migrating {target.app} into the rig's database")
            store = Store(self.services.database_url, target)
            store.prepare()
            self._stores[target.database] = store
        return store

    def _prepare_next(self, then: Settings) -> None:
        """Start the next run's crew; a next target that does not resolve is that
        run's error, not this one's."""
        try:
            self.prepare(worker_specs(then, resolve(then)))
        except RigError:
            pass

    def _collect(
        self, crew: Crew | None, store: Store | None, target: Target | None, history: History
    ) -> None:
        """The ledger and the effects, once the run is over: the checker's ground truth."""
        if crew is not None:
            try:
                ledger = crew.control.ledger()
            except redis.RedisError as error:
                history.add(ERROR, message=f"the control store did not answer: {one_line(error)}")
                ledger = []
            for row in ledger:
                history.add(LEDGER, at=row["started_at"], **row)
            try:
                history.add(BROKER, dead_lettered=crew.broker.dead_lettered())
            except BrokerDown as error:
                history.add(ERROR, message=f"the broker did not answer: {one_line(error)}")
        if store is not None and target is not None:
            try:
                effects = store.effects(target)
            except Exception as error:  # noqa: BLE001 - a failing effects query is a result
                history.add(ERROR, message=one_line(error))
                return
            if target.effects:
                history.add(EFFECTS, source=target.effects)
            for key, count in effects:
                history.add(ROW, business_key=key, count=count)

    def close(self) -> None:
        """Wait for crews still starting or leaving; the backend removes the rest."""
        self.dismiss_finished()
        self.dismiss(self._next)
        self._next = None
        for thread in self._leaving:
            thread.join(WORKERS_ONLINE_S + 30)
        for store in self._stores.values():  # a server the user lent keeps none of them
            store.drop()
        self._stores.clear()


class Plan(Protocol):
    """How a run sends its work and lands its faults, on a ready crew."""

    def execute(
        self, runner: Runner, crew: Crew, target: Target, history: History, progress: Progress
    ) -> None: ...


@dataclass(frozen=True)
class OneFault:
    """A catalog scenario: the checkpoint armed first, every task sent at once,
    then the one fault on the first execution to reach it."""

    name: str
    settings: Settings

    def execute(
        self, runner: Runner, crew: Crew, target: Target, history: History, progress: Progress
    ) -> None:
        settings = self.settings
        if settings.fault != "none":
            runner.arm(crew, settings)
        progress(f"{self.name}: sending {settings.tasks} task(s)")
        for index in range(settings.tasks):
            runner.send(crew, target, index, history)
        if settings.fault == "none":
            return
        progress(f"{self.name}: waiting for a task at {settings.at}")
        if not runner.inject(crew, settings, history, wait_s=30):
            return
        # A task that dies every time: each next execution that reaches the point
        # is hit too, until fault_times, or until none comes (the broker gave up).
        for hit in range(2, settings.fault_times + 1):
            runner.arm(crew, settings)
            progress(f"{self.name}: waiting for execution {hit} at {settings.at}")
            if not runner.inject(crew, settings, history, wait_s=REPEAT_WAIT_S):
                break


def worker_specs(settings: Settings, target: Target) -> list[WorkerSpec]:
    environment = settings.worker_environment() | target.environment()
    return [
        WorkerSpec(
            f"w{i}",
            environment,
            transport=settings.transport,
            broker_setup=TRANSPORTS[settings.transport].crew_setup(settings),
            memory_mb=settings.memory_limit_mb,
            database=target.database,
            project_dir=target.project_dir,
            requirements=target.requirements,
        )
        for i in range(1, settings.workers + 1)
    ]


def one_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
