"""The run's workers on Docker by name, each forked in a slot container that
lives for the whole run: started, signalled, paused, looked into, removed.
The Docker backend decides what each runs (its image, command and
environment); this holds them for the run.

Why slots: a worker in a container of its own cost about 1.8 CPU seconds
machine wide to start (the container's start and removal, the imports of
Celery and Django), and a catalog starts about 240 (docs/measurements.md).
A slot runs the fork server (rig.backends.forkserver), which has imported
them once, and forks each worker it is given, with that worker's command
and environment, in a session of its own, its log in the run's directory on
this machine.

One worker per slot at a time, so what acts on a container still acts on
exactly one worker: `docker pause` (the cgroup freezer), the network cuts
and resets (rig.backends.docker_network), a memory limit. "Kill the
container" is SIGKILL of the worker's process group; SIGTERM and SIGQUIT go
to its main process, as Docker sends them to PID 1. Both go by the worker's
pid on this machine, so a frozen worker is signalled as a frozen container
was. Its exit is the server's word, recorded in the run's history as the
local backend does. A slot that a pause or a network fault touched is
removed with its worker, never reused; a slot is reused only by a worker
with the same image, mounts and memory limit.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from signal import Signals
from typing import Any

import docker.errors
from docker.models.containers import Container

from rig.backends import pids
from rig.backends.base import Exit, Services, WorkerSpec, last_line, worker_arguments
from rig.backends.docker_engine import ROLE_LABEL, DockerEngine
from rig.backends.docker_events import WorkerEvents
from rig.backends.forkserver import ForkedProcess, ForkServer
from rig.errors import EnvironmentProblem
from rig.transports import worker_environment

# The host's rig package, mounted read-only into every worker: the agent that
# wraps the target's app is the controller's own version, with no image rebuild.
RIG_PACKAGE = Path(__file__).resolve().parents[1]
RIG_MOUNT = "/opt/celery-rig"
# The run's directory on this machine, in every slot: its socket, its workers' logs.
RUN_MOUNT = "/run/celery-rig"
# What a slot's container is made with; a worker takes a free slot made the same.
SLOT_OPTIONS = ("volumes", "working_dir", "mem_limit", "memswap_limit")
STOP_S = 10.0  # a killed worker's exit is reported within this

# Signal one process inside the worker container (signal 0: none) and wait until
# it is gone (or a zombie), so its end is confirmed from the process table. It
# reads the table with the same code as the local backend (rig.backends.pids).
_SIGNAL_AND_CONFIRM = (
    inspect.getsource(pids)
    + """
import sys
pid, signal, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if signal:
    os.kill(pid, signal)
gone = wait_gone(pid, timeout)
print("alive" if gone is None else gone)
sys.exit(1 if gone is None else 0)
"""
)


def worker_options(
    spec: WorkerSpec, command: list[str], broker_url: str, inside: Services
) -> dict[str, Any]:
    """One worker: the agent's command (from the compose file's worker
    `command`), the crew's URLs (`broker_url`: its transport's broker as the
    workers reach it), the rig's package, the user's project, the memory limit."""
    environment = worker_environment(spec, broker_url, inside.control_url, inside.database_url)
    # The user's project at the path it has on the host, read-only, as the
    # working directory `celery -A` imports from; else the image's exam_app.
    project = {spec.project_dir: {"bind": spec.project_dir, "mode": "ro"}}
    options: dict[str, Any] = {
        "command": worker_arguments(command, spec),
        "environment": {**environment, "PYTHONPATH": RIG_MOUNT},
        "volumes": {
            str(RIG_PACKAGE): {"bind": f"{RIG_MOUNT}/rig", "mode": "ro"},
            **(project if spec.project_dir else {}),
        },
    }
    if spec.project_dir:
        options["working_dir"] = spec.project_dir
    if spec.memory_mb:  # no swap beyond the limit, so going past it is an OOM kill
        options |= {"mem_limit": f"{spec.memory_mb}m", "memswap_limit": f"{spec.memory_mb}m"}
    return options


def children(pid: int) -> list[int]:
    """A single-threaded process's children, by their pids on this machine."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def innermost_pid(pid: int) -> int | None:
    """The pid a process has in its own namespace (its container's)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    line = next(line for line in status.splitlines() if line.startswith("NSpid:"))
    return int(line.split()[-1])


@dataclass
class Slot:
    name: str  # its container's, in the run
    key: str  # what its container was made with (SLOT_OPTIONS and the image)
    container: Container
    server: ForkServer
    server_pid: int  # on this machine
    reusable: bool = True  # False once a pause or a network fault touched it


@dataclass
class Worker:
    slot: Slot
    request: tuple[str, list[str], dict[str, str], str, str]  # ForkServer.spawn's
    process: ForkedProcess | None = None
    pid: int = 0  # its main process's pid on this machine; 0: none (never 0 to a kill)


class WorkerContainers:
    def __init__(self, engine: DockerEngine, events: WorkerEvents, directory: Path) -> None:
        self.engine = engine
        self.events = events
        self.dir = directory  # on this machine; RUN_MOUNT in every slot
        self.workers: dict[str, Worker] = {}
        self.free: list[Slot] = []
        self.slots: dict[str, Slot] = {}  # every slot container of the run, by name
        self.numbers = itertools.count(1)
        self.lock = threading.Lock()  # lanes start and remove their crews at once

    def worker_in(self, slot_name: str) -> str:
        """The worker a slot container holds now ("" if none): its events are that worker's."""
        for name, worker in list(self.workers.items()):
            if worker.slot.name == slot_name:
                return name
        return ""

    # --- start and stop --------------------------------------------------------
    def start(self, name: str, image: str, options: dict[str, Any]) -> None:
        key = json.dumps([image, {o: options.get(o) for o in SLOT_OPTIONS}], sort_keys=True)
        with self.lock:
            slot = next((s for s in self.free if s.key == key), None)
            if slot is not None:
                self.free.remove(slot)
        if slot is None:
            slot = self._new_slot(key, image, options)
        module, *args = options["command"]
        cwd, log = options.get("working_dir", ""), f"{RUN_MOUNT}/{name}.log"
        self.workers[name] = Worker(slot, (module, args, options["environment"], cwd, log))
        self._log(name).unlink(missing_ok=True)  # one log per worker per run
        self._fork(name)

    def _new_slot(self, key: str, image: str, options: dict[str, Any]) -> Slot:
        name = f"slot-{next(self.numbers)}"
        socket = f"{RUN_MOUNT}/{name}.sock"
        run_dir = {str(self.dir): {"bind": RUN_MOUNT, "mode": "rw"}}
        container = self.engine.run_container(
            name,
            image,
            role="worker",
            command=ForkServer.command(socket, python="python", owned=False),
            environment={"PYTHONPATH": RIG_MOUNT},
            init=True,  # docker-init reaps a killed worker's orphans
            **{o: options[o] for o in SLOT_OPTIONS if o in options and o != "volumes"},
            volumes={**options["volumes"], **run_dir},
        )
        server = ForkServer(self.dir / f"{name}.sock", lambda: _ended(container), local=False)
        try:
            server.wait_ready()
        except OSError as error:
            raise EnvironmentProblem(f"worker slot {name}: {error}") from None
        container.reload()
        (server_pid,) = children(container.attrs["State"]["Pid"])  # docker-init's one child
        slot = Slot(name, key, container, server, server_pid)
        self.slots[name] = slot
        return slot

    def _fork(self, name: str) -> None:
        worker = self.workers[name]
        process = worker.slot.server.spawn(*worker.request)
        worker.process = process
        # 0 if it has already ended (and been reaped): nothing is signalled then.
        in_slot = (p for p in children(worker.slot.server_pid) if innermost_pid(p) == process.pid)
        worker.pid = next(in_slot, 0)
        threading.Thread(target=self._watch, args=(name, process), daemon=True).start()

    def _watch(self, name: str, process: ForkedProcess) -> None:
        """Record the worker's exit in the history, as the local backend does."""
        self.events.observers.record(name, action="exit", exit_code=process.wait())

    def restart(self, name: str) -> None:
        """A new worker in the same slot, as a container's restart (a no-op while it runs)."""
        process = self.workers[name].process
        if process is not None and process.poll() is None:
            return
        self._fork(name)
        self.events.observers.record(name, action="start")

    def failed_start(self, names: list[str]) -> str:
        """Why a worker of `names` did not come up: the last line of one that exited."""
        for name in names:
            worker = self.workers.get(name)
            code = None if worker is None or worker.process is None else worker.process.poll()
            if code is not None:
                log = self.logs([name]).get(name, "")
                return f"worker {name} exited ({code}): {last_line(log)}"
        return ""

    def remove(self, names: list[str] | None = None) -> None:
        """End these workers (None: every one) and free their slots; a slot
        that cannot be reused is removed, and with None every slot is."""
        for name in list(self.workers) if names is None else names:
            worker = self.workers.pop(name, None)
            if worker is not None:
                self._end(worker)
        if names is None:
            for slot in list(self.slots.values()):
                self._remove_slot(slot)
            self.free.clear()
            # with any slot an interruption created before it could be tracked
            self.engine.remove_containers(f"{ROLE_LABEL}=worker")

    def _end(self, worker: Worker) -> None:
        """Kill the worker's group and wait for its exit; its slot is freed for
        the next worker only if it was never changed and this went cleanly."""
        slot = worker.slot
        if slot.reusable and self._stopped(worker) and slot.server.ended() is None:
            with self.lock:
                self.free.append(slot)
        else:  # the container goes, and anything left in it with it
            self._remove_slot(slot)

    @staticmethod
    def _stopped(worker: Worker) -> bool:
        process = worker.process
        if process is None or process.poll() is not None:
            return True
        if not worker.pid:
            return False
        try:
            os.killpg(worker.pid, Signals.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _remove_slot(self, slot: Slot) -> None:
        self.slots.pop(slot.name, None)
        try:
            slot.container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    def logs(self, names: list[str] | None = None) -> dict[str, str]:
        # Other lanes start and remove their crews' workers meanwhile: look up by
        # name, never iterate the shared table itself.
        return {
            name: self._log(name).read_text(errors="replace")
            for name in (list(self.workers) if names is None else names)
            if self._log(name).exists()
        }

    def _log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    # --- faults --------------------------------------------------------------
    def signal(self, name: str, signal: str) -> bool:
        """Signal the worker: SIGKILL to its whole group (as a container dies
        whole), any other to its main process (as Docker signals PID 1); False
        if it had exited before the signal (its exit is recorded as it was)."""
        worker = self.workers[name]
        if not worker.pid or worker.process is None or worker.process.poll() is not None:
            return False
        try:
            if signal == "SIGKILL":
                os.killpg(worker.pid, Signals.SIGKILL)
            else:
                os.kill(worker.pid, Signals[signal])
        except ProcessLookupError:
            return False
        return True

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        process = self.workers[name].process
        assert process is not None
        try:
            code = process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return Exit(process.exited_at, f"exit status {code}, from the slot's fork server")

    def signal_process(self, name: str, pid: int, signal: int, timeout_s: float) -> Exit | None:
        """Signal one process in the worker's container (0: none) and wait, bounded,
        until it is gone: confirmed from the container's process table."""
        command = ["python", "-c", _SIGNAL_AND_CONFIRM, str(pid), str(signal), str(timeout_s)]
        # Bounded past the wait inside: the interpreter's start in a loaded container.
        result = self.engine.exec(self.container(name), command, timeout_s + 30)
        if result.exit_code != 0:
            return None
        return Exit(float(result.output.strip()), "process table: gone or a zombie")

    def container(self, name: str) -> Container:
        return self.workers[name].slot.container

    def changed_container(self, name: str) -> Container:
        """The worker's container, for a fault that changes it (its network):
        the slot is removed with the worker, never reused."""
        slot = self.workers[name].slot
        slot.reusable = False
        return slot.container

    def pause(self, name: str) -> Exit | None:
        container = self.changed_container(name)
        container.pause()  # the cgroup freezer: every process of the container stops
        container.reload()
        if container.status != "paused":
            return None
        return Exit(time.time(), "container paused (cgroup freezer)")

    def resume(self, name: str) -> None:
        self.container(name).unpause()

    def memory_limit_mb(self, name: str) -> int:
        limit = self.container(name).attrs["HostConfig"]["Memory"] or 0
        return int(limit) // (1024 * 1024)

    def forget(self) -> None:
        """The engine removes the containers with the run; forget them here."""
        self.workers.clear()
        self.slots.clear()
        self.free.clear()


def _ended(container: Container) -> str | None:
    """Why a slot's server ended (its container exited), or None while it runs."""
    container.reload()
    if container.status not in ("exited", "dead"):
        return None
    return last_line(container.logs(tail=5).decode(errors="replace"))
