"""Crews: the workers of one run, each on a corner of the broker and of the
control store of its own (a Redis database, a RabbitMQ virtual host), so the
next run's crew starts while this one's run settles, and a crew that is
leaving cannot touch the next run. The pool is shared by the runner and by
the fairness comparison."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from celery import Celery

from rig import contract
from rig.backends.base import Backend, Services, WorkerSpec
from rig.control import Control, with_db
from rig.events import WorkerStartFailed, controller_app, pool_processes, wait_answering
from rig.transports import TRANSPORTS

WORKERS_ONLINE_S = 90.0
READY_POLL_S = 1.0  # how often a crew's start looks whether a worker stopped
SLOTS = range(1, 16)  # Redis' 16 databases, RabbitMQ's 16 virtual hosts; 0 unused
# Crews are numbered across every pool: their workers' names (w1-3) stay unique
# when pools run side by side (rig.lanes).
_NUMBERS = itertools.count(1)


@dataclass
class Crew:
    db: int  # its slot: the broker's corner and the control store's database
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
                *(spec.transport, spec.broker_node, spec.broker_setup, spec.environment),
                spec.queues,
                *(spec.memory_mb, spec.database, spec.project_dir),
            )

        return [shape(s) for s in self.specs] == [shape(s) for s in specs]


class CrewPool:
    """Starts crews in the background, keeps the next one ready, and removes
    those whose run is over without making the next run wait."""

    def __init__(self, backend: Backend, services: Services, slots: Sequence[int] = SLOTS) -> None:
        self.backend = backend
        self.services = services
        self._slots = itertools.cycle(slots)  # another pool at the same time has others
        self._next: Crew | None = None
        self._leaving: list[threading.Thread] = []
        # Crews whose run is over, removed once the next run's fault has landed:
        # removing containers meanwhile would slow the engine at the kill.
        self._done: list[Crew] = []

    def start(self, specs: list[WorkerSpec]) -> Crew:
        """Start a crew in the background; its `ready` thread ends once all answer a ping."""
        db, number = next(self._slots), next(_NUMBERS)
        named = [replace(s, name=f"{s.name}-{number}", broker_db=db) for s in specs]
        name, node, setup = specs[0].transport, specs[0].broker_node, specs[0].broker_setup
        transport = TRANSPORTS[name]
        url = transport.crew_url(self.backend.broker_url(name, node), db)
        # Its own controller app and client: none of their connections outlive the
        # crew (a broker restart leaves dead ones behind).
        control = Control(with_db(self.services.control_url, db))
        results = control.url if specs[0].environment.get(contract.RESULTS) else None
        app = controller_app(url, f"crew-{number}", setup.get("declared"), results)
        broker = transport.Broker(url, self.backend.broker_admin(name, node))
        crew = Crew(db, named, broker, control, app, threading.Thread())

        def start() -> None:
            try:
                crew.broker.reset(setup)  # before any worker binds its queues here
                crew.control.reset()
                self.backend.start_workers(named)
                nodenames = [s.nodename for s in named]
                failed = lambda: self.backend.failed_start(crew.names)  # noqa: E731
                wait_announced(crew.control, nodenames, WORKERS_ONLINE_S, failed)
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
        self._next = self.start(specs)

    def hire(self, specs: list[WorkerSpec]) -> Crew:
        """A ready crew for these specs: the prepared one when it matches, else a new one."""
        crew = self._next if self._next is not None and self._next.matches(specs) else None
        if crew is None:
            self.dismiss(self._next)
            crew = self.start(specs)
        self._next = None
        self.wait_ready(crew)
        return crew

    def wait_ready(self, crew: Crew) -> None:
        """Block until the crew answers; its start's error (a timeout too) is raised
        here, with the workers' logs attached (CrewFailed.logs)."""
        crew.ready.join(WORKERS_ONLINE_S + 30)
        if crew.ready.is_alive():
            crew.error = TimeoutError(f"crew on database {crew.db} still starting")
        if crew.error is not None:
            logs = self.backend.worker_logs(crew.names)  # why a worker did not answer
            self.dismiss(crew)
            raise CrewFailed(crew.error, logs) from crew.error

    def retire(self, crew: Crew) -> None:
        """The crew's run is over: it leaves at the next dismiss_finished()."""
        self._done.append(crew)

    def dismiss_finished(self) -> None:
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

    def close(self) -> None:
        """Wait for crews still starting or leaving; the backend removes the rest."""
        self.dismiss_finished()
        self.dismiss(self._next)
        self._next = None
        for thread in self._leaving:
            thread.join(WORKERS_ONLINE_S + 30)


def wait_announced(
    control: Control, nodenames: list[str], timeout_s: float, failed_start: Callable[[], str]
) -> None:
    """Until every worker announced its consumer up (rig.checkpoints
    .announce_ready), bounded; a worker that stopped ends the wait within
    READY_POLL_S. One blocking read a second: pinging until answered took about
    three pings (each a reply queue on the broker) and six container
    inspections a second, most of the controller's CPU in a catalog."""
    waiting = set(nodenames)
    deadline = time.monotonic() + timeout_s
    while waiting:
        why = failed_start()
        if why:
            raise WorkerStartFailed(why)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"workers {', '.join(sorted(waiting))} did not start in {timeout_s:.0f} s"
            )
        waiting -= control.wait_ready(min(READY_POLL_S, left))


class CrewFailed(Exception):
    """A crew that did not start: its error, and its workers' logs to keep."""

    def __init__(self, error: BaseException, logs: dict[str, str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.logs = logs
