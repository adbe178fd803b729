"""The run's workers as process groups on this machine, by name: `celery
worker` from the compose file's worker command, forked from the run's fork
server (rig.backends.forkserver), signalled, stopped and looked into; each
exit goes into the run's history, as the Docker backend's do. "Kill the
container" is SIGKILL of the worker's process group."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from signal import Signals

from rig import compose
from rig.backends.base import Exit, Observers, WorkerSpec, last_line, worker_arguments
from rig.backends.forkserver import ForkServer
from rig.backends.pids import alive, stopped, wait_gone
from rig.backends.run_dir import Process, RunDirectory

PAUSE_S = 5.0  # a process group stops within this, or the pause did not land


def worker_command(spec: WorkerSpec) -> list[str]:
    template = compose.service(compose.WORKER_TEMPLATE)["command"]
    # The compose command starts with the `celery` program; run it from this venv.
    return [sys.executable, "-m", "celery", *worker_arguments(template, spec)[1:]]


class WorkerProcesses:
    def __init__(
        self,
        host: RunDirectory,
        observers: Observers,
        environment: Callable[[WorkerSpec], dict[str, str]],
    ) -> None:
        self.host = host
        self.observers = observers
        self.environment = environment  # a worker's, from the backend's services
        self.server: ForkServer | None = None  # set by the backend once it answers
        self.processes: dict[str, Process] = {}
        self.specs: dict[str, WorkerSpec] = {}

    def start(self, spec: WorkerSpec) -> None:
        self.specs[spec.name] = spec
        # One log per worker per scenario; a restart appends to it.
        self._log(spec.name).unlink(missing_ok=True)
        self._spawn(spec)

    def restart(self, name: str) -> None:
        self._spawn(self.specs[name])

    def _spawn(self, spec: WorkerSpec) -> None:
        assert self.server is not None, "the backend starts its fork server first"
        process = self.host.fork(
            self.server, spec.name, worker_command(spec), self.environment(spec)
        )
        self.processes[spec.name] = process
        # A restart, in a run: recorded as the Docker backend records one.
        self.observers.record(spec.name, action="start")
        threading.Thread(target=self._watch, args=(spec.name, process), daemon=True).start()

    def _watch(self, name: str, process: Process) -> None:
        """Record the worker's exit in the history, as the Docker backend does."""
        self.observers.record(name, action="exit", exit_code=process.wait())

    def failed_start(self, names: list[str]) -> str:
        for name in names:
            process = self.processes.get(name)
            code = None if process is None else process.poll()
            if code is not None:
                log = self.logs([name]).get(name, "")
                return f"worker {name} exited ({code}): {last_line(log)}"
        return ""

    def stop(self, names: list[str] | None = None) -> None:
        for name in list(self.processes) if names is None else names:
            process = self.processes.pop(name, None)
            if process is not None:
                self.host.kill_group(process)

    def signal(self, name: str, signal: str) -> bool:
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
        return self.wait_process_gone(pid, timeout_s=10)

    @staticmethod
    def wait_process_gone(pid: int, timeout_s: float) -> Exit | None:
        gone = wait_gone(pid, timeout_s)
        return None if gone is None else Exit(gone, "process table: gone")

    def pause(self, name: str) -> Exit | None:
        group = self.processes[name].pid
        os.killpg(group, Signals.SIGSTOP)
        deadline = time.time() + PAUSE_S
        while time.time() < deadline:
            if stopped(group):
                return Exit(time.time(), "process group stopped (SIGSTOP)")
            time.sleep(0.01)
        return None

    def resume(self, name: str) -> None:
        os.killpg(self.processes[name].pid, Signals.SIGCONT)

    def logs(self, names: list[str] | None = None) -> dict[str, str]:
        return {
            name: self._log(name).read_text(errors="replace")
            for name in (list(self.specs) if names is None else names)
            if self._log(name).exists()
        }

    def _log(self, name: str) -> Path:
        return self.host.dir / f"{name}.log"
