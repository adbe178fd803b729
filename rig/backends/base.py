"""The protocol every backend implements, and the records it returns."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from rig import contract
from rig.control import with_db
from rig.history import BACKEND, History


@dataclass(frozen=True)
class Services:
    """Where the rig's own services answer, as the controller reaches them. A
    transport's broker starts when a run first asks for it (Backend.broker_url)."""

    database_url: str  # the server's first database; each target gets one of its own
    database_engine: str  # "postgresql" or "sqlite"
    # The rig's control store (checkpoints, write ledger): a Redis of its own, so
    # faulting the broker never touches it.
    control_url: str


# A transport's broker nodes: the one runs share, and one that runs which stop
# the broker or set what the whole of it reads (rig.settings.Settings
# .needs_broker_alone) take in turn, so the runs sharing the other go on
# meanwhile (rig.lanes). Each starts on first use.
SHARED_NODE = ""
ALONE_NODE = "alone"


@dataclass(frozen=True)
class WorkerSpec:
    name: str  # the worker's node name is celery@<name>
    environment: dict[str, str]
    queues: tuple[str, ...] = ("celery",)
    transport: str = ""  # which broker (a name of rig.transports.TRANSPORTS)
    # The crew's corner of its broker (a Redis database, a RabbitMQ virtual host)
    # and of the control store: each crew has its own, so the next scenario's
    # workers can start while this one's still settle.
    broker_db: int = 0
    broker_setup: dict[str, Any] = field(default_factory=dict)  # transport.crew_setup
    broker_node: str = SHARED_NODE  # which of the transport's broker nodes
    memory_mb: int = 0  # a memory limit (the kernel's OOM killer enforces it), 0: none
    database: str = "rig"  # the target's database on the rig's database server
    project_dir: str = ""  # the user's project, mounted read-only where workers run in containers
    requirements: str = ""  # its extra packages (see Backend.prepare_project)

    @property
    def nodename(self) -> str:
        return f"celery@{self.name}"


@dataclass(frozen=True)
class Exit:
    """A confirmed change of a worker or a process: when, and how it was seen."""

    at: float
    detail: str


def agent_command(command: list[str]) -> list[str]:
    """The compose file's worker command with the rig's wrapper as the app
    (rig.agent loads the target's own app; see there)."""
    app = command.index("-A") + 1
    return [*command[:app], "rig.agent", *command[app + 1 :]]


def worker_arguments(command: list[str], spec: WorkerSpec) -> list[str]:
    """The compose file's worker command for this worker, on either backend:
    the agent as the app, the worker's name for %h, its crew's queues."""
    named = [part.replace("%h", spec.name) for part in agent_command(command)]
    return [*named, f"--queues={','.join(spec.queues)}"]


def agent_environment(
    spec: WorkerSpec, crew_broker_url: str, control_url: str, database_url: str
) -> dict[str, str]:
    """Where a worker's agent finds the rig's services (URLs as the worker reaches
    them; the broker's already the crew's corner), then the spec's own environment
    (the target and its settings)."""
    return {
        contract.BROKER_URL: crew_broker_url,
        contract.CONTROL_URL: with_db(control_url, spec.broker_db),
        contract.DATABASE_URL: with_database(database_url, spec.database),
        **spec.environment,
    }


def with_database(url: str, name: str) -> str:
    """The same database server, database `name` (a file beside it for SQLite)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return f"{url.rsplit('/', 1)[0]}/{name}.sqlite3"
    return urlunsplit(parts._replace(path=f"/{name}"))


def last_line(log: str) -> str:
    """A log's last non-empty line: a crashed worker's error."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def free_port() -> int:
    """A free TCP port on loopback, for a service the rig publishes there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Observers:
    """Which history each worker's deaths and exits go to: the run's that
    observes it, several runs at once when scenarios run in parallel."""

    def __init__(self) -> None:
        self._by_worker: dict[str, History] = {}
        self._lock = threading.Lock()

    def observe(self, history: History, workers: list[str]) -> None:
        """These workers report to this history from now on; its other workers stop."""
        with self._lock:
            for worker in [w for w, h in self._by_worker.items() if h is history]:
                del self._by_worker[worker]
            self._by_worker.update(dict.fromkeys(workers, history))

    def history_of(self, worker: str) -> History | None:
        with self._lock:
            return self._by_worker.get(worker)

    def record(self, worker: str, **data: Any) -> None:
        """One of the worker's starts, exits or deaths, in the history that
        observes it (none: not in a run now, dropped)."""
        history = self.history_of(worker)
        if history is not None:
            history.add(BACKEND, worker=worker, **data)


@dataclass
class BackendInfo:
    name: str
    reason: str  # why this backend was chosen, for the first line of output
    notes: list[str] = field(default_factory=list)  # leftovers cleaned, and the like


class Backend(Protocol):
    info: BackendInfo

    def start(self) -> Services:
        """Start the broker and the database (migrated); clean leftovers of earlier runs."""
        ...

    def observe(self, history: History, workers: list[str]) -> None:
        """Send deaths and exits of these workers to this history from now on."""
        ...

    def prepare_project(self, requirements: str) -> None:
        """Make a project's extra packages available to its workers (once; may take a while)."""
        ...

    def start_workers(self, specs: list[WorkerSpec]) -> None: ...

    def failed_start(self, names: list[str]) -> str:
        """Why one of these workers already exited (its log's last line), or ""."""
        ...

    def stop_workers(self, names: list[str] | None = None) -> None:
        """Remove these workers (all when None)."""
        ...

    def unavailable(self) -> dict[str, str]:
        """Capabilities this backend implements but cannot use on this machine
        (not root, a tool missing), each with the reason."""
        ...

    def signal_worker(self, name: str, signal: str) -> bool:
        """Send a signal to the worker's main process, as `docker kill -s` does to
        PID 1; SIGKILL takes the whole worker (container, or process group).
        False: the worker had already exited, so nothing got it (wait_exit then
        answers with that exit)."""
        ...

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        """When the worker's main process ended (since the last signal), or None."""
        ...

    def signal_process(self, name: str, pid: int, signal: str) -> Exit | None:
        """Signal one process of a worker (a prefork child, by the pid the task
        saw) and wait until it is gone."""
        ...

    def wait_process_gone(self, name: str, pid: int, timeout_s: float) -> Exit | None: ...

    def broker_url(self, transport: str, node: str = SHARED_NODE) -> str:
        """The transport's broker node as the controller reaches it, started on
        first use."""
        ...

    def broker_admin(self, transport: str, node: str = SHARED_NODE) -> Callable[[str], str]:
        """The node's admin interface, where the node runs (BrokerNode.admin)."""
        ...

    def restart_worker(self, name: str) -> None: ...

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]: ...

    def close(self) -> None:
        """Remove everything this backend started. Safe to call twice."""
        ...


# --- optional capabilities: a fault names those it needs (rig.faults.*.NEEDS) ---
@runtime_checkable
class Pauses(Protocol):
    def pause_worker(self, name: str) -> Exit | None:
        """Freeze every process of the worker; confirmed when frozen."""
        ...

    def resume_worker(self, name: str) -> None: ...


@runtime_checkable
class Partitions(Protocol):
    def partition(self, name: str, peer: str, cut: bool) -> Exit | None:
        """Cut the worker off from its broker node (its crew's) or its
        database; cut=False heals it."""
        ...

    def blip(self, name: str, peer: str, refuse: bool) -> Exit | None:
        """refuse: reset every TCP connection the worker has to the peer (both ends
        see it) and refuse its new ones; confirmed once at least one was reset.
        refuse=False: accept them again."""
        ...


@runtime_checkable
class LimitsMemory(Protocol):
    def memory_limit_mb(self, name: str) -> int:
        """The memory limit the worker runs under (WorkerSpec.memory_mb), 0 for none."""
        ...


@runtime_checkable
class RestartsBrokers(Protocol):
    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None], node: str
    ) -> Exit | None:
        """Stop the broker node, call while_down, and start it again on the same address,
        keeping its data when persist (Redis: a snapshot on SHUTDOWN SAVE; RabbitMQ:
        its data directory); confirmed when it answers again."""
        ...


# Every backend kills (Backend.signal_worker); the rest are the protocols above.
CAPABILITIES: dict[str, type | None] = {
    "kill": None,
    "pause": Pauses,
    "partition": Partitions,
    "memory-limit": LimitsMemory,
    "restart-broker": RestartsBrokers,
}


class Unsupported(Protocol):
    """What a backend says of the capabilities it does not implement at all."""

    WITHOUT: ClassVar[dict[str, str]]


def lacks(backend: Backend) -> dict[str, str]:
    """The capabilities this backend does not have, each with the reason: those
    whose protocol it does not implement (its WITHOUT says why), then those it
    cannot use here."""
    without: dict[str, str] = getattr(backend, "WITHOUT", {})
    missing = {
        name: without.get(name, f"the {backend.info.name} backend has no {name}")
        for name, protocol in CAPABILITIES.items()
        if protocol is not None and not isinstance(backend, protocol)
    }
    return missing | backend.unavailable()
