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

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from signal import Signals
from typing import Any

import docker
import docker.errors
import psycopg
import redis
from docker.models.containers import Container
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from rig import compose
from rig.backends import redis_server
from rig.backends.base import (
    BackendInfo,
    Exit,
    Services,
    WorkerSpec,
    agent_command,
    agent_environment,
    free_port,
    last_line,
)
from rig.backends.extra_image import image_with
from rig.backends.hosts import BrokerNode
from rig.backends.pids import alive
from rig.backends.python_images import worker_image
from rig.errors import BrokerDown, EnvironmentProblem
from rig.history import BACKEND, History
from rig.transports import TRANSPORTS

PROJECT_LABEL = "com.celery-rig.project"
RUN_LABEL = "com.celery-rig.run"
OWNER_LABEL = "com.celery-rig.owner-pid"
ROLE_LABEL = "com.celery-rig.role"  # "worker", or "service" for redis, control, postgres
# The host's rig package, mounted read-only into every worker: the agent that
# wraps the target's app is the controller's own version, with no image rebuild.
RIG_PACKAGE = Path(__file__).resolve().parents[1]
RIG_MOUNT = "/opt/celery-rig"

# Signal one process inside the worker container (signal 0: none) and wait until
# it is gone (or a zombie), so its end is confirmed from the process table.
_SIGNAL_AND_CONFIRM = """
import os, sys, time
pid, signal, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if signal:
    os.kill(pid, signal)
deadline = time.time() + timeout
while time.time() < deadline:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    if state in ("gone", "Z", "X"):
        print(f"{state} {time.time()}")
        sys.exit(0)
    time.sleep(0.01)
print("alive")
sys.exit(1)
"""


# What a service not answering yet raises, for each kind of service.
_NOT_YET = (OSError, redis.RedisError, psycopg.Error, BrokerDown)


def _tmpfs(spec: dict[str, Any]) -> dict[str, str]:
    mounts = {}
    for entry in spec.get("tmpfs") or []:
        path, _, options = entry.partition(":")
        mounts[path] = options
    return mounts


class DockerBackend:
    def __init__(self, reason: str) -> None:
        self.info = BackendInfo("docker", reason)
        try:
            self.client = docker.from_env(timeout=30)
            self.client.ping()
        except docker.errors.DockerException as error:
            raise EnvironmentProblem(
                f"no Docker engine answers ({error}); start it, or run with --backend local"
            ) from None
        self.run_id = f"celery-rig-{uuid.uuid4().hex[:8]}"
        self.labels = {
            PROJECT_LABEL: "celery-rig",
            RUN_LABEL: self.run_id,
            OWNER_LABEL: str(os.getpid()),
        }
        self.services = compose.load_services()
        self.network: Any = None
        self.brokers: dict[str, BrokerNode] = {}  # by transport, started on first use
        self.inside: Services | None = None
        self.transports: dict[str, str] = {}  # worker -> the transport its crew uses
        self.images: dict[str, str] = {}  # a project's requirements file -> its image
        self.worker_image = ""  # the app image of this Python version (python_images)
        self.workers: dict[str, Container] = {}
        self.history: History | None = None
        self.observed: set[str] = set()
        self._deaths: dict[str, threading.Event] = {}
        self._death_info: dict[str, tuple[float, str]] = {}
        self._events: Any = None
        self._events_thread: threading.Thread | None = None

    # --- start ---------------------------------------------------------
    def start(self) -> Services:
        # Before anything starts: a Python the images cannot provide is one line.
        self.worker_image = worker_image(self.services[compose.WORKER_TEMPLATE]["image"])
        self._remove_leftovers()
        self._check_images()
        self.network = self.client.networks.create(self.run_id, driver="bridge", labels=self.labels)
        self._watch_events()
        control = self.run_service("redis", publish=6379, alias="control")
        postgres = self.run_service("postgres", publish=5432)
        env = compose.environment(self.services["postgres"])
        credentials = f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
        services = Services(
            database_url=(
                f"postgres://{credentials}@127.0.0.1:{self.host_port(postgres, 5432)}"
                f"/{env['POSTGRES_DB']}"
            ),
            database_engine="postgresql",
            control_url=f"redis://127.0.0.1:{self.host_port(control, 6379)}/0",
        )
        # The same services as the workers reach them, on the run's network.
        self.inside = Services(
            database_url=f"postgres://{credentials}@postgres:5432/{env['POSTGRES_DB']}",
            database_engine="postgresql",
            control_url="redis://control:6379/0",
        )
        # Ready when a real connection from here succeeds: polling that is quicker
        # than waiting for the compose health check's next 1 s tick.
        self.wait_answering(control, lambda: redis_server.ping(services.control_url))
        self.wait_answering(postgres, lambda: psycopg.connect(services.database_url).close())
        return services

    def _broker(self, transport: str) -> BrokerNode:
        """The transport's broker node, started on first use (RabbitMQ: seconds)."""
        if transport not in self.brokers:
            self.brokers[transport] = TRANSPORTS[transport].on_docker(self)
        return self.brokers[transport]

    def broker_url(self, transport: str) -> str:
        return self._broker(transport).url

    def broker_admin(self, transport: str) -> Callable[[list[str]], str]:
        return self._broker(transport).admin

    def _remove_leftovers(self) -> None:
        """Remove what an interrupted run left: labelled objects whose owner is gone."""
        stale_runs = set()
        for container in self.client.containers.list(
            all=True, filters={"label": PROJECT_LABEL}, ignore_removed=True
        ):
            owner = int(container.labels.get(OWNER_LABEL, "0"))
            if owner != os.getpid() and not alive(owner):
                stale_runs.add(container.labels.get(RUN_LABEL))
                container.remove(force=True, v=True)
        for network in self.client.networks.list(filters={"label": PROJECT_LABEL}):
            owner = int(network.attrs.get("Labels", {}).get(OWNER_LABEL, "0"))
            if owner != os.getpid() and not alive(owner):
                stale_runs.add(network.attrs["Labels"].get(RUN_LABEL))
                network.remove()
        if stale_runs:
            self.info.notes.append(
                "removed leftovers of interrupted run(s): "
                + ", ".join(sorted(filter(None, stale_runs)))
            )

    def _check_images(self) -> None:
        for name in ("redis", "postgres"):  # the control store, the database
            self.check_image(name)
        self.check_image(compose.WORKER_TEMPLATE, self.worker_image)

    def service_spec(self, name: str) -> dict[str, Any]:
        return dict(self.services[name])

    def check_image(self, service: str, image: str = "") -> None:
        image = image or self.services[service]["image"]
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise EnvironmentProblem(
                f"image {image} is missing (service {service}): build it with `make images`"
            ) from None

    def run_container(
        self, name: str, image: str, role: str = "service", **options: Any
    ) -> Container:
        """Start a labelled container on the run's network, reachable there as `name`."""
        return self.client.containers.run(
            image,
            name=f"{self.run_id}-{name}",
            hostname=name,
            labels={**self.labels, ROLE_LABEL: role},
            network=self.network.name,
            networking_config={
                self.network.name: self.client.api.create_endpoint_config(aliases=[name])
            },
            detach=True,
            **options,
        )

    def run_service(self, name: str, publish: int, alias: str = "") -> Container:
        spec = self.services[name]
        return self.run_container(
            alias or name,
            spec["image"],
            command=spec.get("command"),
            environment=compose.environment(spec),
            tmpfs=_tmpfs(spec),
            # A free port on loopback, fixed for the container's life (a restart keeps
            # it): no clash with `make up` or anything else.
            ports={f"{publish}/tcp": ("127.0.0.1", free_port())},
        )

    def host_port(self, container: Container, port: int) -> int:
        container.reload()
        return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])

    def wait_answering(
        self, container: Container, connect: Callable[[], object], timeout_s: float = 60
    ) -> None:
        try:
            retry(
                stop=stop_after_delay(timeout_s),
                wait=wait_fixed(0.1),
                retry=retry_if_exception_type(_NOT_YET),
                reraise=True,
            )(connect)()
        except _NOT_YET as error:
            logs = container.logs(tail=20).decode(errors="replace")
            raise EnvironmentProblem(
                f"{container.name} does not answer after {timeout_s:.0f} s ({error}):\n{logs}"
            ) from None

    # --- events ----------------------------------------------------------
    def _watch_events(self) -> None:
        self._events = self.client.events(
            decode=True,
            filters={"label": f"{RUN_LABEL}={self.run_id}", "event": ["die", "start", "oom"]},
        )

        def pump() -> None:
            try:
                for event in self._events:
                    self._on_event(event)
            except Exception:  # noqa: BLE001 - the stream ends when close() closes it
                return

        self._events_thread = threading.Thread(target=pump, name="docker-events", daemon=True)
        self._events_thread.start()

    def _on_event(self, event: dict[str, Any]) -> None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        at = event.get("timeNano", time.time_ns()) / 1e9
        container_id = event.get("id", "")
        name = attributes.get("name", "")
        if event.get("Action") == "die":
            self._death_info[container_id] = (at, attributes.get("exitCode", "?"))
            self._deaths.setdefault(container_id, threading.Event()).set()
        worker = name.removeprefix(f"{self.run_id}-")
        if self.history is not None and worker in self.observed:
            self.history.add(
                BACKEND,
                at=at,
                action=event.get("Action"),
                worker=worker,
                exit_code=attributes.get("exitCode"),
            )

    def observe(self, history: History, workers: list[str]) -> None:
        self.history, self.observed = history, set(workers)

    # --- workers ---------------------------------------------------------
    def prepare_project(self, requirements: str) -> None:
        if requirements and requirements not in self.images:
            self.images[requirements] = image_with(self.client, self.worker_image, requirements)

    def start_workers(self, specs: list[WorkerSpec]) -> None:
        template = self.services[compose.WORKER_TEMPLATE]
        assert self.inside is not None
        inside = self.inside
        for spec in specs:
            command = [*agent_command(template["command"]), f"--queues={','.join(spec.queues)}"]
            transport = TRANSPORTS[spec.transport]
            broker = transport.crew_url(self._broker(spec.transport).inside_url, spec.broker_db)
            environment = agent_environment(spec, broker, inside.control_url, inside.database_url)
            self.transports[spec.name] = spec.transport
            # The user's project at the path it has on the host, read-only, as the
            # working directory `celery -A` imports from; else the image's exam_app.
            project = {spec.project_dir: {"bind": spec.project_dir, "mode": "ro"}}
            self.workers[spec.name] = self.run_container(
                spec.name,
                self.images.get(spec.requirements, self.worker_image),
                role="worker",
                command=command,
                environment={**environment, "PYTHONPATH": RIG_MOUNT},
                volumes={
                    str(RIG_PACKAGE): {"bind": f"{RIG_MOUNT}/rig", "mode": "ro"},
                    **(project if spec.project_dir else {}),
                },
                **({"working_dir": spec.project_dir} if spec.project_dir else {}),
                # No swap beyond the limit, so going past it is an OOM kill.
                **(
                    {"mem_limit": f"{spec.memory_mb}m", "memswap_limit": f"{spec.memory_mb}m"}
                    if spec.memory_mb
                    else {}
                ),
            )

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

    def _remove_containers(self, *labels: str) -> None:
        """Remove this run's containers by label, including any that an
        interruption created on the engine before we could track it."""
        selector = {"label": [f"{RUN_LABEL}={self.run_id}", *labels]}
        for container in self.client.containers.list(
            all=True, filters=selector, ignore_removed=True
        ):
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass

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
            self._remove_containers(f"{ROLE_LABEL}=worker")

    def memory_limit_mb(self, name: str) -> int:
        limit = self.workers[name].attrs["HostConfig"]["Memory"] or 0
        return int(limit) // (1024 * 1024)

    def unavailable(self) -> dict[str, str]:
        missing = [tool for tool in ("nsenter", "iptables") if shutil.which(tool) is None]
        if os.geteuid() != 0 or missing:
            why = f"{', '.join(missing)} not found" if missing else "the rig is not root"
            return {
                "partition": f"cutting a container's network needs root, nsenter and "
                f"iptables on this machine ({why})"
            }
        return {}

    def signal_worker(self, name: str, signal: str) -> None:
        container = self.workers[name]
        self._deaths.setdefault(container.id, threading.Event()).clear()
        container.kill(signal=signal)

    def wait_exit(self, name: str, timeout_s: float) -> Exit | None:
        container = self.workers[name]
        if not self._deaths.setdefault(container.id, threading.Event()).wait(timeout_s):
            return None
        at, exit_code = self._death_info[container.id]
        return Exit(at, f"die event, exit code {exit_code}")

    def signal_process(self, name: str, pid: int, signal: str) -> Exit | None:
        return self._in_container(name, pid, Signals[signal].value, 10)

    def wait_process_gone(self, name: str, pid: int, timeout_s: float) -> Exit | None:
        return self._in_container(name, pid, 0, timeout_s)

    def _in_container(self, name: str, pid: int, signal: int, timeout_s: float) -> Exit | None:
        command = ["python", "-c", _SIGNAL_AND_CONFIRM, str(pid), str(signal), str(timeout_s)]
        result = self.workers[name].exec_run(command)
        output = result.output.decode(errors="replace").strip()
        if result.exit_code != 0:
            return None
        state, at = output.split()
        return Exit(float(at), f"process table: {state}")

    def pause_worker(self, name: str) -> Exit | None:
        container = self.workers[name]
        container.pause()  # the cgroup freezer: every process of the container stops
        container.reload()
        if container.status != "paused":
            return None
        return Exit(time.time(), "container paused (cgroup freezer)")

    def resume_worker(self, name: str) -> None:
        self.workers[name].unpause()

    def restart_broker(
        self, transport: str, persist: bool, while_down: Callable[[], None]
    ) -> Exit | None:
        return self._broker(transport).restart(persist, while_down)

    def partition(self, name: str, peer: str, cut: bool) -> Exit | None:
        """Drop the worker's packets to and from the peer, inside the container's
        network namespace (its own iptables, not the host's)."""
        worker = self.workers[name]
        worker.reload()
        broker = self.brokers[self.transports[name]].service
        peer_ip = self._address({"broker": broker, "database": "postgres"}[peer])
        rule = "-I" if cut else "-D"
        for chain, direction in (("OUTPUT", "-d"), ("INPUT", "-s")):
            command = [
                "nsenter",
                "-t",
                str(worker.attrs["State"]["Pid"]),
                "-n",
                "iptables",
                rule,
                chain,
                direction,
                peer_ip,
                "-j",
                "DROP",
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                return None
        return Exit(
            time.time(),
            f"iptables in {name}'s namespace: {peer} {peer_ip} "
            + ("dropped" if cut else "reachable again"),
        )

    def _address(self, service: str) -> str:
        container = self.client.containers.get(f"{self.run_id}-{service}")
        return container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]

    def restart_worker(self, name: str) -> None:
        self.workers[name].start()

    def worker_logs(self, names: list[str] | None = None) -> dict[str, str]:
        logs = {}
        for name, container in self.workers.items():
            if names is not None and name not in names:
                continue
            try:
                logs[name] = container.logs().decode(errors="replace")
            except docker.errors.NotFound:
                logs[name] = "(container already removed)"
        return logs

    # --- stop ------------------------------------------------------------
    def close(self) -> None:
        self._remove_containers()
        self.workers.clear()
        for node in self.brokers.values():
            node.close()
        self.brokers.clear()
        if self._events is not None:
            self._events.close()
            self._events = None
        for network in self.client.networks.list(filters={"label": f"{RUN_LABEL}={self.run_id}"}):
            try:
                network.remove()
            except docker.errors.NotFound:
                pass
        self.network = None
