"""The local backend: the same services as plain processes on this machine.

Each broker runs as its transport says (rig.transports.<name>.local: a
redis-server, a rabbitmq-server on free loopback ports); the control store is
a redis-server of its own; the database is a
private PostgreSQL server (rig.backends.postgres_node), or SQLite in the
run's directory where PostgreSQL is not installed, or the server
RIG_DATABASE_SERVER names;
workers are `celery worker` processes built from the compose file's worker
command (rig.backends.local_workers), forked from a server that has imported
Celery and Django once (rig.backends.forkserver). "Kill the container"
becomes SIGKILL of a worker's process group.

Everything lives under one directory per run (rig.backends.run_dir), whose
processes an interrupted run's next start kills.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from rig.backends import redis_server
from rig.backends.base import SHARED_NODE, BackendInfo, Exit, Observers, Services, WorkerSpec
from rig.backends.forkserver import ForkServer
from rig.backends.hosts import BrokerNodes
from rig.backends.local_workers import WorkerProcesses
from rig.backends.postgres_node import LocalPostgres
from rig.backends.postgres_node import binaries as postgres_binaries
from rig.backends.run_dir import RunDirectory, remove_stale_runs
from rig.errors import BadInput, EnvironmentProblem
from rig.history import History
from rig.target import python_path
from rig.transports import TRANSPORTS, worker_environment

# A PostgreSQL server the user wants the rig to use instead of a private one; the
# rig creates its databases there and drops them at the end (see rig.store).
DATABASE_SERVER_ENV = "RIG_DATABASE_SERVER"


class LocalBackend:
    # The capabilities it does not implement (rig.backends.base.lacks), and why.
    WITHOUT = {
        "partition": "local workers share this machine's network namespace; cutting one "
        "off needs a namespace per worker (the docker backend does it)",
        "memory-limit": "a memory limit needs a cgroup per worker (the docker backend "
        "sets one per container)",
    }

    def __init__(self, reason: str) -> None:
        self.info = BackendInfo("local", reason)
        self.run_id = f"run-{uuid.uuid4().hex[:8]}"
        self.host = RunDirectory(self.run_id)
        self.dir = self.host.dir
        self.observers = Observers()
        self.workers = WorkerProcesses(self.host, self.observers, self._worker_environment)
        self.control: subprocess.Popen[bytes] | None = None
        self.fork_server_process: subprocess.Popen[bytes] | None = None
        self.brokers = BrokerNodes(
            lambda transport, node: TRANSPORTS[transport].on_local(self.host, node)
        )
        self.postgres: LocalPostgres | None = None
        self.services: Services | None = None

    # --- start ---------------------------------------------------------
    def start(self) -> Services:
        cleaned = remove_stale_runs()
        if cleaned:
            self.info.notes.append(f"removed leftovers of interrupted run(s): {', '.join(cleaned)}")
        server = redis_server.find()  # the control store
        self.host.create()
        # Its imports run while the control store and the database start.
        fork_server, self.fork_server_process = self.host.start_fork_server(
            {"PYTHONPATH": python_path()}
        )
        control_url, control_command = redis_server.command(server, self.dir, "control")
        self.control = self.host.spawn("control", control_command, {})
        redis_server.wait_answering(control_url, self.dir / "control.log")
        database_url = self._database_server()
        self._wait_fork_server(fork_server)
        engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        self.services = Services(database_url, engine, control_url)
        return self.services

    def _database_server(self) -> str:
        """A server the user named for the rig (RIG_DATABASE_SERVER), else a private
        PostgreSQL, else SQLite where no PostgreSQL is installed (and the run says so).
        DATABASE_URL is the project's own name: never read."""
        named = os.environ.get(DATABASE_SERVER_ENV, "")
        if named:
            if urlsplit(named).scheme not in ("postgres", "postgresql"):
                raise BadInput(f"{DATABASE_SERVER_ENV}={named!r}: expected a postgres:// URL")
            return named
        bin_dir = postgres_binaries()
        if bin_dir is None:
            self.info.notes.append(
                "no PostgreSQL installed: the rig's database is SQLite (`make setup` installs "
                "postgresql; PostgreSQL-only migrations and scenarios need it)"
            )
            return f"sqlite:///{self.dir / 'rig.sqlite3'}"
        self.postgres = LocalPostgres(self.dir, self.host.spawn, bin_dir)
        self.postgres.start()
        return self.postgres.url

    def _wait_fork_server(self, server: ForkServer) -> None:
        try:
            server.wait_ready()
        except OSError as error:
            raise EnvironmentProblem(f"the local workers cannot start: {error}") from None
        self.workers.server = server

    def broker_url(self, transport: str, node: str = SHARED_NODE) -> str:
        return self.brokers.get(transport, node).url

    def broker_admin(self, transport: str, node: str = SHARED_NODE) -> Callable[[str], str]:
        return self.brokers.get(transport, node).admin

    def observe(self, history: History, workers: list[str]) -> None:
        self.observers.observe(history, workers)

    # --- workers ---------------------------------------------------------
    def _worker_environment(self, spec: WorkerSpec) -> dict[str, str]:
        assert self.services is not None
        services = self.services
        broker_url = self.brokers.get(spec.transport, spec.broker_node).inside_url
        environment = worker_environment(
            spec, broker_url, services.control_url, services.database_url
        )
        # The rig's wrapper, then the user's project (the agent puts it first on sys.path).
        return environment | {"PYTHONPATH": python_path()}

    def prepare_project(self, requirements: str) -> None:
        """Nothing to do: local workers run with this interpreter and its packages."""

    def start_workers(self, specs: list[WorkerSpec]) -> None:
        for spec in specs:
            self.workers.start(spec)

    def failed_start(self, names: list[str]) -> str:
        return self.workers.failed_start(names)

    def stop_workers(self, names: list[str] | None = None) -> None:
        self.workers.stop(names)

    def restart_worker(self, name: str) -> None:
        self.workers.restart(name)

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]:
        return self.workers.logs(names)

    # --- faults ------------------------------------------------------------
    def unavailable(self) -> dict[str, str]:
        return {}

    def signal_worker(self, name: str, signal: str) -> bool:
        return self.workers.signal(name, signal)

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        return self.workers.wait_exit(name, timeout_s)

    def signal_process(self, name: str, pid: int, signal: str) -> Exit | None:
        return self.workers.signal_process(name, pid, signal)

    def wait_process_gone(self, name: str, pid: int, timeout_s: float) -> Exit | None:
        return self.workers.wait_process_gone(pid, timeout_s)

    def pause_worker(self, name: str) -> Exit | None:
        return self.workers.pause(name)

    def resume_worker(self, name: str) -> None:
        self.workers.resume(name)

    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None], node: str
    ) -> Exit | None:
        return self.brokers.get(transport, node).restart(persist, while_down)

    # --- stop ------------------------------------------------------------
    def close(self) -> None:
        self.workers.stop()
        self.brokers.close()
        postgres = self.postgres.server if self.postgres is not None else None
        for server in (self.control, postgres, self.fork_server_process):
            if server is not None:
                self.host.kill_group(server)
        self.control = self.postgres = self.fork_server_process = None
        self.host.remove()
