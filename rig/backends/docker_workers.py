"""The run's worker containers by name, one worker each: started, signalled
(their `die` events confirm a death), paused, looked into, removed. The
Docker backend decides what each runs (its image, command and environment);
this holds them for the run."""

from __future__ import annotations

import inspect
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container

from rig.backends import pids
from rig.backends.base import Exit, Services, WorkerSpec, agent_command, last_line
from rig.backends.docker_engine import ROLE_LABEL, DockerEngine
from rig.backends.docker_events import DeathWatch
from rig.transports import worker_environment

# The host's rig package, mounted read-only into every worker: the agent that
# wraps the target's app is the controller's own version, with no image rebuild.
RIG_PACKAGE = Path(__file__).resolve().parents[1]
RIG_MOUNT = "/opt/celery-rig"

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
    """The container of one worker: the agent's command (from the compose file's
    worker `command`), the crew's URLs (`broker_url`: its transport's broker as
    the workers reach it), the rig's package, the user's project, the memory limit."""
    command = [*agent_command(command), f"--queues={','.join(spec.queues)}"]
    environment = worker_environment(spec, broker_url, inside.control_url, inside.database_url)
    # The user's project at the path it has on the host, read-only, as the
    # working directory `celery -A` imports from; else the image's exam_app.
    project = {spec.project_dir: {"bind": spec.project_dir, "mode": "ro"}}
    options: dict[str, Any] = {
        "command": command,
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


class WorkerContainers:
    def __init__(self, engine: DockerEngine, deaths: DeathWatch) -> None:
        self.engine = engine
        self.deaths = deaths
        self.containers: dict[str, Container] = {}

    def __getitem__(self, name: str) -> Container:
        return self.containers[name]

    def start(self, name: str, image: str, options: dict[str, Any]) -> None:
        self.containers[name] = self.engine.run_container(name, image, role="worker", **options)

    def failed_start(self, names: list[str]) -> str:
        """Why a worker of `names` did not come up: the last line of one that exited."""
        for name in names:
            container = self.containers.get(name)
            if container is None:
                continue
            container.reload()
            if container.status in ("exited", "dead"):
                log = container.logs(tail=5).decode(errors="replace")
                return f"worker {name} exited: {last_line(log)}"
        return ""

    def remove(self, names: list[str] | None = None) -> None:
        """Remove these workers' containers (None: every one, with any an
        interruption created before it could be tracked)."""
        for name in list(self.containers) if names is None else names:
            container = self.containers.pop(name, None)
            if container is None:
                continue
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        if names is None:
            self.engine.remove_containers(f"{ROLE_LABEL}=worker")

    def restart(self, name: str) -> None:
        self.containers[name].start()

    def logs(self, names: list[str] | None = None) -> dict[str, str]:
        logs = {}
        # Other lanes start and remove their crews' workers meanwhile: look up by
        # name, never iterate the shared table itself.
        for name in list(self.containers) if names is None else names:
            container = self.containers.get(name)
            if container is None:
                continue
            try:
                logs[name] = container.logs().decode(errors="replace")
            except docker.errors.NotFound:
                logs[name] = "(container already removed)"
        return logs

    def signal(self, name: str, signal: str) -> bool:
        """Signal the worker's main process (the container's first); False if it
        had exited before the signal (its death is recorded as it was)."""
        container = self.containers[name]
        self.deaths.expect(container.id)
        try:
            container.kill(signal=signal)
        except docker.errors.APIError as error:
            if error.status_code != HTTPStatus.CONFLICT:  # 409: "is not running"
                raise
            container.reload()  # it exited before the signal: its die event may be read already
            self.deaths.died_before_signal(container.id, container.attrs["State"])
            return False
        return True

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        return self.deaths.wait_death(self.containers[name].id, timeout_s)

    def signal_process(self, name: str, pid: int, signal: int, timeout_s: float) -> Exit | None:
        """Signal one process in the worker's container (0: none) and wait, bounded,
        until it is gone: confirmed from the container's process table."""
        command = ["python", "-c", _SIGNAL_AND_CONFIRM, str(pid), str(signal), str(timeout_s)]
        # Bounded past the wait inside: the interpreter's start in a loaded container.
        result = self.engine.exec(self.containers[name], command, timeout_s + 30)
        if result.exit_code != 0:
            return None
        return Exit(float(result.output.strip()), "process table: gone or a zombie")

    def pause(self, name: str) -> Exit | None:
        container = self.containers[name]
        container.pause()  # the cgroup freezer: every process of the container stops
        container.reload()
        if container.status != "paused":
            return None
        return Exit(time.time(), "container paused (cgroup freezer)")

    def resume(self, name: str) -> None:
        self.containers[name].unpause()

    def memory_limit_mb(self, name: str) -> int:
        limit = self.containers[name].attrs["HostConfig"]["Memory"] or 0
        return int(limit) // (1024 * 1024)

    def forget(self) -> None:
        """The engine removes the containers with the run; forget them here."""
        self.containers.clear()
