"""The local backend: the same services as plain processes on this machine.

Each broker runs as its transport says (rig.transports.<name>.local: a
redis-server, a rabbitmq-server on free loopback ports); the control store is
a redis-server of its own; the database is a
private PostgreSQL server (rig.backends.postgres_node), or SQLite in the
run's directory where PostgreSQL is not installed, or the server
RIG_DATABASE_SERVER names;
workers are `celery worker` processes built from the compose file's worker
command. "Kill the container" becomes SIGKILL of a worker's process group.

Everything lives under one directory per run (rig.backends.run_dir), whose
processes an interrupted run's next start kills.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from signal import Signals
from urllib.parse import urlsplit

from rig import compose
from rig.backends import redis_server
from rig.backends.base import (
    BackendInfo,
    Exit,
    Observers,
    Services,
    WorkerSpec,
    agent_command,
    agent_environment,
    last_line,
)
from rig.backends.hosts import BrokerNodes
from rig.backends.pids import alive, stopped, wait_gone
from rig.backends.postgres_node import LocalPostgres
from rig.backends.postgres_node import binaries as postgres_binaries
from rig.backends.run_dir import RunDirectory, remove_stale_runs
from rig.errors import BadInput
from rig.history import BACKEND, History
from rig.target import python_path
from rig.transports import TRANSPORTS

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
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.specs: dict[str, WorkerSpec] = {}
        self.observers = Observers()
        self.control: subprocess.Popen[bytes] | None = None
        self.brokers = BrokerNodes(lambda transport: TRANSPORTS[transport].on_local(self.host))
        self.postgres: LocalPostgres | None = None
        self.services: Services | None = None

    # --- start ---------------------------------------------------------
    def start(self) -> Services:
        cleaned = remove_stale_runs()
        if cleaned:
            self.info.notes.append(f"removed leftovers of interrupted run(s): {', '.join(cleaned)}")
        server = redis_server.find()  # the control store
        self.host.create()
        control_url, control_command = redis_server.command(server, self.dir, "control")
        self.control = self.host.spawn("control", control_command, {})
        redis_server.wait_answering(control_url, self.dir / "control.log")
        database_url = self._database_server()
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

    def broker_url(self, transport: str) -> str:
        return self.brokers[transport].url

    def broker_admin(self, transport: str) -> Callable[[str], str]:
        return self.brokers[transport].admin

    def observe(self, history: History, workers: list[str]) -> None:
        self.observers.observe(history, workers)

    # --- workers ---------------------------------------------------------
    def _command(self, spec: WorkerSpec) -> list[str]:
        template = compose.service(compose.WORKER_TEMPLATE)["command"]
        # The compose command starts with the `celery` program; run it from this venv.
        command = [sys.executable, "-m", "celery", *agent_command(template)[1:]]
        return [part.replace("%h", spec.name) for part in command] + [
            f"--queues={','.join(spec.queues)}"
        ]

    def prepare_project(self, requirements: str) -> None:
        """Nothing to do: local workers run with this interpreter and its packages."""

    def start_workers(self, specs: list[WorkerSpec]) -> None:
        for spec in specs:
            self.specs[spec.name] = spec
            # One log per worker per scenario; a restart appends to it.
            (self.dir / f"{spec.name}.log").unlink(missing_ok=True)
            self._start_worker(spec)

    def _start_worker(self, spec: WorkerSpec) -> None:
        assert self.services is not None
        services = self.services
        transport = TRANSPORTS[spec.transport]
        broker = transport.crew_url(self.brokers[spec.transport].inside_url, spec.broker_db)
        environment = agent_environment(spec, broker, services.control_url, services.database_url)
        # The rig's wrapper, then the user's project (the agent puts it first on sys.path).
        environment["PYTHONPATH"] = python_path()
        process = self.host.spawn(spec.name, self._command(spec), environment)
        self.processes[spec.name] = process
        history = self.observers.history_of(spec.name)
        if history is not None:  # a restart, in a run: as Docker's start event says
            history.add(BACKEND, action="start", worker=spec.name)
        threading.Thread(target=self._watch, args=(spec.name, process), daemon=True).start()

    def _watch(self, name: str, process: subprocess.Popen[bytes]) -> None:
        """Record the worker's exit in the history, as Docker's die event would be."""
        code = process.wait()
        history = self.observers.history_of(name)
        if history is not None:
            history.add(BACKEND, action="exit", worker=name, exit_code=code)

    def failed_start(self, names: list[str]) -> str:
        for name in names:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                log = self.worker_logs([name]).get(name, "")
                return f"worker {name} exited ({process.returncode}): {last_line(log)}"
        return ""

    def stop_workers(self, names: list[str] | None = None) -> None:
        for name in list(self.processes) if names is None else names:
            process = self.processes.pop(name, None)
            if process is not None:
                self.host.kill_group(process)

    def unavailable(self) -> dict[str, str]:
        return {}

    def signal_worker(self, name: str, signal: str) -> bool:
        process = self.processes[name]
        if process.poll() is not None:
            return False
        if signal == "SIGKILL":  # the whole worker, as a container dies whole
            os.killpg(process.pid, Signals.SIGKILL)
        else:  # the main process only, as Docker signals PID 1
            os.kill(process.pid, Signals[signal])
        return True

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        try:
            code = self.processes[name].wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return Exit(time.time(), f"process exit status {code}")

    def signal_process(self, name: str, pid: int, signal: str) -> Exit | None:
        try:
            if not alive(pid) or os.getpgid(pid) != self.processes[name].pid:
                return None  # not a process of this worker (any more)
            os.kill(pid, Signals[signal])
        except ProcessLookupError:  # gone between the check and the signal: not ours to hit
            return None
        return self.wait_process_gone(name, pid, timeout_s=10)

    def wait_process_gone(self, name: str, pid: int, timeout_s: float) -> Exit | None:
        gone = wait_gone(pid, timeout_s)
        return None if gone is None else Exit(gone, "process table: gone")

    def pause_worker(self, name: str) -> Exit | None:
        group = self.processes[name].pid
        os.killpg(group, Signals.SIGSTOP)
        deadline = time.time() + 5
        while time.time() < deadline:
            if stopped(group):
                return Exit(time.time(), "process group stopped (SIGSTOP)")
            time.sleep(0.01)
        return None

    def resume_worker(self, name: str) -> None:
        os.killpg(self.processes[name].pid, Signals.SIGCONT)

    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None]
    ) -> Exit | None:
        return self.brokers[transport].restart(persist, while_down)

    def restart_worker(self, name: str) -> None:
        self._start_worker(self.specs[name])

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]:
        return {
            name: (self.dir / f"{name}.log").read_text(errors="replace")
            for name in (list(self.specs) if names is None else names)
            if (self.dir / f"{name}.log").exists()
        }

    # --- stop ------------------------------------------------------------
    def close(self) -> None:
        self.stop_workers()
        self.brokers.close()
        postgres = self.postgres.server if self.postgres is not None else None
        for server in (self.control, postgres):
            if server is not None:
                self.host.kill_group(server)
        self.control = self.postgres = None
        self.host.remove()
