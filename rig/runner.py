"""Runs one scenario: provision, hire a crew, run the plan, settle, collect, check.

The order matters: the workers answer a ping before anything is sent, the
event listener subscribes before the first task (Redis events are pub/sub),
the checkpoint is armed before any task is sent (the plan's part), and the
ledger is read only once the run has settled (rig.settle). The next run's
crew starts while this one settles (rig.crews).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from rig import checker
from rig.backends.base import Backend, Services, WorkerSpec, last_line
from rig.checker import Expected, Outcome
from rig.crews import SLOTS, Crew, CrewFailed, CrewPool
from rig.errors import BrokerDown, RigError, one_line
from rig.events import EventListener
from rig.faults.registry import part as fault_part
from rig.history import BROKER, EFFECTS, ERROR, LEDGER, NOTE, ROW, SETTLED, History
from rig.plans import OneFault, Plan, RunContext
from rig.provision import Provisioner
from rig.settings import Settings
from rig.settle import stopped_consuming, stranded, wait_settled
from rig.store import Store
from rig.target import Target, resolve
from rig.transports import TRANSPORTS

Progress = Callable[[str], None]
# Asked once a run's faults have landed: the next run's settings, whose crew may
# start while this run settles, or None.
NextRun = Callable[[], Settings | None]


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
                {key: f.get(key) for key in ("id", "name", "target", "action", "landed", "detail")}
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


class Runner:
    """Runs scenarios one after another on one started backend. A lane (1, 2,
    ...) runs beside others (rig.lanes), on crew slots and a database of its own."""

    def __init__(
        self, backend: Backend, services: Services, lane: int = 0, slots: Sequence[int] = SLOTS
    ) -> None:
        self.backend = backend
        self.services = services
        self.lane = lane
        self.crews = CrewPool(backend, services, slots)
        self.provision = Provisioner(backend, services)

    def lanes(self, count: int) -> list[Runner]:
        """Runners side by side on this one's backend, each on crew slots and a
        database of its own; this one's crews leave first, so none shares a slot."""
        self.crews.close()
        return [
            Runner(self.backend, self.services, lane + 1, SLOTS[lane::count])
            for lane in range(count)
        ]

    def run(
        self,
        name: str,
        settings: Settings,
        expect: dict[str, Expected] | None,
        progress: Progress = lambda _message: None,
        then: NextRun = lambda: None,
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
        store: Store | None = None
        target: Target | None = None
        try:
            target = self._target(settings)
            for note in target.notes:
                history.add(NOTE, text=note)
            store = self.provision.store(target, progress)
            self.provision.broker(settings.transport, settings.broker_node, progress)
            progress(f"{name}: starting {settings.workers} workers")
            crew = self.crews.hire(worker_specs(settings, target))
            store.reset(target)
            # A fault that lands outside any execution brings its own plan.
            plan = plan or fault_part(settings.fault, "Plan", OneFault)(name, settings)
            run = RunContext(
                name, settings, target, crew, self.backend, history, progress, store.url
            )
            self._run_plan(run, plan, then)
        except CrewFailed as failed:
            logs = failed.logs
            _record_crash(failed.error, history)
        except Exception as error:  # noqa: BLE001 - one crashing scenario is a result
            _record_crash(error, history)
        finally:
            collect(crew, store, target, history)
            self._note_crashes(history)
            outcome = checker.check(history, expect, fault_expected=settings.fault != "none")
            if crew is not None:
                if outcome.verdict in ("fail", "unknown", "error"):
                    logs = self.backend.worker_logs(crew.names)
                self.backend.observe(history, [])  # the crew's removal is not part of the run
                self.crews.retire(crew)
        return Result(name, settings, expect, outcome, history, time.time() - started, logs)

    def _note_crashes(self, history: History) -> None:
        """Why each worker that exited on its own did: its log's last line."""
        for worker in sorted(checker.crashed_workers(history)):
            log = self.backend.worker_logs([worker]).get(worker, "")
            text = f"{worker} exited on its own: {last_line(log)}"
            history.add(NOTE, text=text, crashed_worker=worker)

    def _target(self, settings: Settings) -> Target:
        """The settings' target, on this lane's database."""
        return replace(resolve(settings), lane=self.lane)

    def _run_plan(self, run: RunContext, plan: Plan, then: NextRun) -> None:
        listener = EventListener(run.crew.app, run.history)
        listener.start()
        self.backend.observe(run.history, run.crew.names)
        try:
            try:
                plan.execute(run)
            except BaseException:
                run.stop_senders()  # the plan's error is the one to tell
                raise
            run.wait_senders()
            run.wait_healed()
            # The faults have landed: earlier crews may go, the next crew may start.
            self.crews.dismiss_finished()
            self._prepare_next(then)
            run.progress(f"{run.name}: waiting for the run to settle (redelivery, drain)")
            wait_settled(run.crew, run.settings, run.history, run.progress)
        finally:
            listener.stop()

    def _prepare_next(self, then: NextRun) -> None:
        """Start the next run's crew, if there is one; a next target that does not
        resolve is that run's error, not this one's."""
        settings = then()
        if settings is None:
            return
        try:
            self.crews.prepare(worker_specs(settings, self._target(settings)))
        except RigError:
            pass

    def close(self) -> None:
        """Wait for crews still starting or leaving, and drop the rig's databases;
        the backend removes the rest."""
        self.crews.close()
        self.provision.close()


def _record_crash(error: BaseException, history: History) -> None:
    if isinstance(error, TimeoutError):  # a bounded wait ran out: the run proves nothing
        history.add(SETTLED, settled=False, reason=str(error))
    else:
        history.add(ERROR, message=one_line(error))


def collect(
    crew: Crew | None, store: Store | None, target: Target | None, history: History
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
            # What no worker was left to take (every one exited) stays there: stranded;
            # what live workers left in the queue, having stopped consuming: unconsumed.
            left = crew.broker.pending_messages() if stranded(crew, history) else 0
            unconsumed = crew.broker.ready_messages() if stopped_consuming(history) else 0
            history.add(
                BROKER,
                dead_lettered=crew.broker.dead_lettered(),
                stranded=left,
                unconsumed=unconsumed,
            )
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


def worker_specs(settings: Settings, target: Target) -> list[WorkerSpec]:
    environment = settings.worker_environment() | target.environment()
    return [
        WorkerSpec(
            f"w{i}",
            environment,
            transport=settings.transport,
            broker_setup=TRANSPORTS[settings.transport].crew_setup(settings),
            broker_node=settings.broker_node,
            memory_mb=settings.memory_limit_mb,
            database=target.database,
            project_dir=target.project_dir,
            requirements=target.requirements,
        )
        for i in range(1, settings.workers + 1)
    ]
