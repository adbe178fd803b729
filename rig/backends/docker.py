"""The Docker backend: the compose file's services as containers, driven
through the Docker SDK.

Why the SDK and not docker-compose: a scenario recreates its workers with
its own settings and must kill one at an exact moment and see its `die`
event; the SDK does all of that in-process, the same on Debian's
docker-compose v1 and on `docker compose` v2 machines. The topology still
comes from docker-compose.yml (rig.compose). Every object carries the label
com.celery-rig.project, and one of an interrupted run is removed on the
next start.
"""

from __future__ import annotations

import inspect
import os
import shutil
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from signal import Signals
from typing import Any

import docker
import docker.errors
import psycopg
from docker.models.containers import Container

from rig import compose
from rig.backends import pids, redis_server
from rig.backends.base import (
    BackendInfo,
    Exit,
    Services,
    WorkerSpec,
    agent_command,
    agent_environment,
    last_line,
)
from rig.backends.docker_engine import ROLE_LABEL, RUN_LABEL, DockerEngine
from rig.backends.docker_events import DeathWatch
from rig.backends.extra_image import image_with
from rig.backends.hosts import BrokerNodes
from rig.backends.python_images import worker_image
from rig.errors import EnvironmentProblem
from rig.history import History
from rig.transports import TRANSPORTS

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


class DockerBackend:
    def __init__(self, reason: str) -> None:
        self.info = BackendInfo("docker", reason)
        try:
            client = docker.from_env(timeout=30)
            client.ping()
        except docker.errors.DockerException as error:
            raise EnvironmentProblem(
                f"no Docker engine answers ({error}); start it, or run with --backend local"
            ) from None
        self.run_id = f"celery-rig-{uuid.uuid4().hex[:8]}"
        self.engine = DockerEngine(client, self.run_id)
        self.deaths = DeathWatch(client, f"{RUN_LABEL}={self.run_id}")
        self.brokers = BrokerNodes(lambda transport: TRANSPORTS[transport].on_docker(self.engine))
        self.inside: Services | None = None  # the services as the workers reach them
        self.transports: dict[str, str] = {}  # worker -> the transport its crew uses
        self.images: dict[str, str] = {}  # a project's requirements file -> its image
        self.worker_image = ""  # the app image of this Python version (python_images)
        self.workers: dict[str, Container] = {}

    # --- start ---------------------------------------------------------
    def start(self) -> Services:
        engine = self.engine
        # Before anything starts: a Python the images cannot provide is one line.
        self.worker_image = worker_image(engine.services[compose.WORKER_TEMPLATE]["image"])
        self.remove_leftovers()
        for name in ("redis", "postgres"):  # the control store, the database
            engine.check_image(name)
        engine.check_image(compose.WORKER_TEMPLATE, self.worker_image)
        engine.create_network()
        self.deaths.start(container_prefix=f"{self.run_id}-")
        control = engine.run_service("redis", publish=6379, alias="control")
        postgres = engine.run_service("postgres", publish=5432)
        env = compose.environment(engine.services["postgres"])
        credentials = f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
        port = engine.host_port(postgres, 5432)
        services = Services(
            database_url=f"postgres://{credentials}@127.0.0.1:{port}/{env['POSTGRES_DB']}",
            database_engine="postgresql",
            control_url=f"redis://127.0.0.1:{engine.host_port(control, 6379)}/0",
        )
        self.inside = Services(
            database_url=f"postgres://{credentials}@postgres:5432/{env['POSTGRES_DB']}",
            database_engine="postgresql",
            control_url="redis://control:6379/0",
        )
        # Ready when a real connection from here succeeds: polling that is quicker
        # than waiting for the compose health check's next 1 s tick.
        engine.wait_answering(control, lambda: redis_server.ping(services.control_url))
        engine.wait_answering(postgres, lambda: psycopg.connect(services.database_url).close())
        return services

    def remove_leftovers(self) -> None:
        stale = self.engine.remove_leftovers()
        if stale:
            self.info.notes.append(f"removed leftovers of interrupted run(s): {', '.join(stale)}")

    def broker_url(self, transport: str) -> str:
        return self.brokers[transport].url

    def broker_admin(self, transport: str) -> Callable[[str], str]:
        return self.brokers[transport].admin

    def observe(self, history: History, workers: list[str]) -> None:
        self.deaths.observe(history, workers)

    # --- workers ---------------------------------------------------------
    def prepare_project(self, requirements: str) -> None:
        if requirements and requirements not in self.images:
            client = self.engine.client
            self.images[requirements] = image_with(client, self.worker_image, requirements)

    def start_workers(self, specs: list[WorkerSpec]) -> None:
        for spec in specs:
            self.transports[spec.name] = spec.transport
            self.workers[spec.name] = self.engine.run_container(
                spec.name,
                self.images.get(spec.requirements, self.worker_image),
                role="worker",
                **self._worker_options(spec),
            )

    def _worker_options(self, spec: WorkerSpec) -> dict[str, Any]:
        """The container of one worker: the agent's command, the crew's URLs, the
        rig's package, the user's project, the memory limit."""
        assert self.inside is not None
        template = self.engine.services[compose.WORKER_TEMPLATE]
        command = [*agent_command(template["command"]), f"--queues={','.join(spec.queues)}"]
        transport = TRANSPORTS[spec.transport]
        broker = transport.crew_url(self.brokers[spec.transport].inside_url, spec.broker_db)
        inside = self.inside
        environment = agent_environment(spec, broker, inside.control_url, inside.database_url)
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

    def failed_start(self, names: list[str]) -> str:
        for name in names:
            container = self.workers.get(name)
            if container is None:
                continue
            container.reload()
            if container.status in ("exited", "dead"):
                log = container.logs(tail=5).decode(errors="replace")
                return f"worker {name} exited: {last_line(log)}"
        return ""

    def stop_workers(self, names: list[str] | None = None) -> None:
        for name in list(self.workers) if names is None else names:
            container = self.workers.pop(name, None)
            if container is None:
                continue
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        if names is None:  # and any an interruption created before we could track it
            self.engine.remove_containers(f"{ROLE_LABEL}=worker")

    def restart_worker(self, name: str) -> None:
        self.workers[name].start()

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]:
        logs = {}
        # Other lanes start and remove their crews' workers meanwhile: look up by
        # name, never iterate the shared table itself.
        for name in list(self.workers) if names is None else names:
            container = self.workers.get(name)
            if container is None:
                continue
            try:
                logs[name] = container.logs().decode(errors="replace")
            except docker.errors.NotFound:
                logs[name] = "(container already removed)"
        return logs

    # --- faults ------------------------------------------------------------
    def unavailable(self) -> dict[str, str]:
        missing = [tool for tool in ("nsenter", "iptables") if shutil.which(tool) is None]
        if os.geteuid() != 0 or missing:
            why = f"{', '.join(missing)} not found" if missing else "the rig is not root"
            return {
                "partition": f"cutting a container's network needs root, nsenter and "
                f"iptables on this machine ({why})"
            }
        return {}

    def signal_worker(self, name: str, signal: str) -> bool:
        container = self.workers[name]
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
        return self.deaths.wait_death(self.workers[name].id, timeout_s)

    def signal_process(self, name: str, pid: int, signal: str) -> Exit | None:
        return self._in_container(name, pid, Signals[signal].value, 10)

    def wait_process_gone(self, name: str, pid: int, timeout_s: float) -> Exit | None:
        return self._in_container(name, pid, 0, timeout_s)

    def _in_container(self, name: str, pid: int, signal: int, timeout_s: float) -> Exit | None:
        command = ["python", "-c", _SIGNAL_AND_CONFIRM, str(pid), str(signal), str(timeout_s)]
        # Bounded past the wait inside: the interpreter's start in a loaded container.
        result = self.engine.exec(self.workers[name], command, timeout_s + 30)
        if result.exit_code != 0:
            return None
        return Exit(float(result.output.strip()), "process table: gone or a zombie")

    def pause_worker(self, name: str) -> Exit | None:
        container = self.workers[name]
        container.pause()  # the cgroup freezer: every process of the container stops
        container.reload()
        if container.status != "paused":
            return None
        return Exit(time.time(), "container paused (cgroup freezer)")

    def resume_worker(self, name: str) -> None:
        self.workers[name].unpause()

    def memory_limit_mb(self, name: str) -> int:
        limit = self.workers[name].attrs["HostConfig"]["Memory"] or 0
        return int(limit) // (1024 * 1024)

    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None]
    ) -> Exit | None:
        return self.brokers[transport].restart(persist, while_down)

    def partition(self, name: str, peer: str, cut: bool) -> Exit | None:
        """Cut the worker off from its crew's broker or from the database."""
        done = self.engine.cut(self.workers[name], self._peer_address(name, peer), cut)
        return Exit(done.at, f"{name}: {peer}: {done.detail}") if done else None

    def blip(self, name: str, peer: str, refuse: bool) -> Exit | None:
        worker, address = self.workers[name], self._peer_address(name, peer)
        if not refuse:
            accepted = self.engine.refuse(worker, address, refuse=False)
            return Exit(time.time(), f"{name}: {peer}: connections accepted") if accepted else None
        # Refuse first, then reset: a consumer that reconnects at once meets the refusal.
        if not self.engine.refuse(worker, address, refuse=True):
            return None
        torn = self.engine.reset(worker, address)
        if not torn:
            return None
        return Exit(
            time.time(), f"{name}: {peer}: {len(torn)} connection(s) reset, new ones refused"
        )

    def _peer_address(self, name: str, peer: str) -> str:
        broker = self.brokers[self.transports[name]].service
        return self.engine.address({"broker": broker, "database": "postgres"}[peer])

    # --- stop ------------------------------------------------------------
    def close(self) -> None:
        self.workers.clear()
        self.brokers.close()
        self.deaths.close()
        self.engine.close()
