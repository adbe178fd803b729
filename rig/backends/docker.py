"""The Docker backend: the compose file's services as containers, driven
through the Docker SDK.

Why the SDK and not docker-compose: a scenario recreates its workers with
its own settings and must kill one at an exact moment and see its `die`
event; the SDK does all of that in-process, the same on Debian's
docker-compose v1 and on `docker compose` v2 machines. The topology still
comes from docker-compose.yml (rig.compose). Every object carries the label
com.celery-rig.project, and one of an interrupted run is removed on the
next start.

The backend is the Backend protocol over its parts: the run's objects on the
engine (docker_engine), the workers in their slot containers (docker_workers,
forked there by rig.backends.forkserver), the engine's events for them
(docker_events), their network faults (docker_network), and each
transport's broker node (rig.transports.<name>.docker). The workers' sockets
and logs are in a directory of the run on this machine.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from signal import Signals

import docker
import docker.errors
import psycopg

from rig import compose
from rig.backends import docker_network, redis_server
from rig.backends.base import SHARED_NODE, BackendInfo, Exit, Services, WorkerSpec
from rig.backends.docker_engine import RUN_LABEL, DockerEngine
from rig.backends.docker_events import WorkerEvents
from rig.backends.docker_workers import WorkerContainers, worker_options
from rig.backends.extra_image import image_with
from rig.backends.hosts import BrokerNodes
from rig.backends.python_images import worker_image
from rig.backends.run_dir import RunDirectory, remove_stale_runs
from rig.errors import EnvironmentProblem
from rig.history import History
from rig.transports import TRANSPORTS


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
        self.events = WorkerEvents(client, f"{RUN_LABEL}={self.run_id}")
        self.brokers = BrokerNodes(
            lambda transport, node: TRANSPORTS[transport].on_docker(self.engine, node)
        )
        self.inside: Services | None = None  # the services as the workers reach them
        self.nodes: dict[str, tuple[str, str]] = {}  # worker -> its crew's (transport, node)
        self.images: dict[str, str] = {}  # a project's requirements file -> its image
        self.worker_image = ""  # the app image of this Python version (python_images)
        # The workers' sockets and logs, on this machine.
        self.host = RunDirectory(self.run_id)
        self.workers = WorkerContainers(self.engine, self.events, self.host.dir)

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
        self.host.create()
        self.host.dir.chmod(0o777)  # the image's user makes its sockets and logs here
        self.events.start(f"{self.run_id}-", self.workers.worker_in)
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
        """Interrupted runs' objects on the engine, then what they left on this
        machine: their folders, and the beats' and producers' run directories
        with the processes recorded there."""
        stale = set(self.engine.remove_leftovers()) | set(remove_stale_runs())
        if stale:
            cleaned = ", ".join(sorted(stale))
            self.info.notes.append(f"removed leftovers of interrupted run(s): {cleaned}")

    def broker_url(self, transport: str, node: str = SHARED_NODE) -> str:
        return self.brokers.get(transport, node).url

    def broker_admin(self, transport: str, node: str = SHARED_NODE) -> Callable[[str], str]:
        return self.brokers.get(transport, node).admin

    def observe(self, history: History, workers: list[str]) -> None:
        self.events.observe(history, workers)

    # --- workers ---------------------------------------------------------
    def prepare_project(self, requirements: str) -> None:
        if requirements and requirements not in self.images:
            client = self.engine.client
            self.images[requirements] = image_with(client, self.worker_image, requirements)

    def start_workers(self, specs: list[WorkerSpec]) -> None:
        assert self.inside is not None
        command = self.engine.services[compose.WORKER_TEMPLATE]["command"]
        for spec in specs:
            self.nodes[spec.name] = (spec.transport, spec.broker_node)
            image = self.images.get(spec.requirements, self.worker_image)
            broker = self.brokers.get(spec.transport, spec.broker_node).inside_url
            self.workers.start(spec.name, image, worker_options(spec, command, broker, self.inside))

    def failed_start(self, names: list[str]) -> str:
        return self.workers.failed_start(names)

    def stop_workers(self, names: list[str] | None = None) -> None:
        self.workers.remove(names)

    def restart_worker(self, name: str) -> None:
        self.workers.restart(name)

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]:
        return self.workers.logs(names)

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
        return self.workers.signal(name, signal)

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        return self.workers.wait_exit(name, timeout_s)

    def signal_process(self, name: str, pid: int, signal: str) -> Exit | None:
        return self.workers.signal_process(name, pid, Signals[signal].value, 10)

    def wait_process_gone(self, name: str, pid: int, timeout_s: float) -> Exit | None:
        return self.workers.signal_process(name, pid, 0, timeout_s)

    def pause_worker(self, name: str) -> Exit | None:
        return self.workers.pause(name)

    def resume_worker(self, name: str) -> None:
        self.workers.resume(name)

    def memory_limit_mb(self, name: str) -> int:
        return self.workers.memory_limit_mb(name)

    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None], node: str
    ) -> Exit | None:
        return self.brokers.get(transport, node).restart(persist, while_down)

    def partition(self, name: str, peer: str, cut: bool) -> Exit | None:
        """Cut the worker off from its crew's broker or from the database."""
        worker = self.workers.changed_container(name)
        done = docker_network.cut(worker, self._peer_address(name, peer), cut)
        return Exit(done.at, f"{name}: {peer}: {done.detail}") if done else None

    def blip(self, name: str, peer: str, refuse: bool) -> Exit | None:
        worker = self.workers.changed_container(name)
        address = self._peer_address(name, peer)
        if not refuse:
            accepted = docker_network.refuse(worker, address, refuse=False)
            return Exit(time.time(), f"{name}: {peer}: connections accepted") if accepted else None
        # Refuse first, then reset: a consumer that reconnects at once meets the refusal.
        if not docker_network.refuse(worker, address, refuse=True):
            return None
        torn = docker_network.reset(worker, address)
        if not torn:
            return None
        return Exit(
            time.time(), f"{name}: {peer}: {len(torn)} connection(s) reset, new ones refused"
        )

    def _peer_address(self, name: str, peer: str) -> str:
        broker = self.brokers.get(*self.nodes[name]).service
        return self.engine.address({"broker": broker, "database": "postgres"}[peer])

    # --- stop ------------------------------------------------------------
    def close(self) -> None:
        self.workers.forget()
        self.brokers.close()
        self.events.close()
        self.engine.close()
        self.host.remove()
