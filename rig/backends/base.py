"""The protocol every backend implements, and the records it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rig.history import History


@dataclass(frozen=True)
class Services:
    broker_url: str  # as the controller reaches it
    database_url: str  # as the controller reaches it
    database_engine: str  # "postgresql" or "sqlite"


@dataclass(frozen=True)
class WorkerSpec:
    name: str  # the worker's node name is celery@<name>
    environment: dict[str, str]
    queues: tuple[str, ...] = ("celery",)
    # The Redis database of its broker: each crew of workers has its own, so
    # the next scenario's workers can start while this one's still settle.
    broker_db: int = 0

    @property
    def nodename(self) -> str:
        return f"celery@{self.name}"


@dataclass(frozen=True)
class KillResult:
    target: str
    signal: str
    confirmed: bool
    confirmed_at: float | None
    detail: str


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

    def start_workers(self, specs: list[WorkerSpec]) -> None: ...

    def stop_workers(self, names: list[str] | None = None) -> None:
        """Remove these workers (all when None)."""
        ...

    def kill_worker(self, name: str) -> KillResult:
        """SIGKILL a worker whole (container, or main process and its group)."""
        ...

    def kill_process(self, name: str, pid: int) -> KillResult:
        """SIGKILL one process of a worker (a prefork child), by its pid as the task saw it."""
        ...

    def restart_worker(self, name: str) -> None: ...

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]: ...

    def close(self) -> None:
        """Remove everything this backend started. Safe to call twice."""
        ...
