"""The run's objects on the Docker engine: a network of its own and labelled
containers on it, started from the compose file's services. These are the
primitives a transport's broker node gets (rig.backends.hosts.DockerHost);
the Docker backend builds its workers and faults on them.

Every object carries the label com.celery-rig.project, its run's id, its
owner's pid and the folder its run's files live in (RUNS_DIR, which follows
TMPDIR); one whose owner is gone is an interrupted run's, removed on the next
start under the same folder (or by `celery-rig clean` there): that start can
remove the run's files as well, and rigs under different folders never sweep
each other's runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import docker
import docker.errors
import psycopg
import redis
from docker.models.containers import Container
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from rig import compose
from rig.backends.base import free_port
from rig.backends.hosts import Executed
from rig.backends.pids import alive
from rig.backends.run_dir import RUNS_DIR
from rig.errors import BrokerDown, EnvironmentProblem, ExecHung

PROJECT_LABEL = "com.celery-rig.project"
RUN_LABEL = "com.celery-rig.run"
OWNER_LABEL = "com.celery-rig.owner-pid"
RUNS_LABEL = "com.celery-rig.runs-dir"
ROLE_LABEL = "com.celery-rig.role"  # "worker", or "service" for a broker, control, postgres

# What a service not answering yet raises, for each kind of service.
_NOT_YET = (OSError, redis.RedisError, psycopg.Error, BrokerDown)


class DockerEngine:
    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.labels = {
            PROJECT_LABEL: "celery-rig",
            RUN_LABEL: run_id,
            OWNER_LABEL: str(os.getpid()),
            RUNS_LABEL: str(RUNS_DIR),
        }
        self.services = compose.load_services()
        self.network: Any = None

    def create_network(self) -> None:
        self.network = self.client.networks.create(self.run_id, driver="bridge", labels=self.labels)

    def service_spec(self, name: str) -> dict[str, Any]:
        return dict(self.services[name])

    def check_image(self, service: str, image: str = "") -> None:
        image = image or self.services[service]["image"]
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise EnvironmentProblem(
                f"image {image} is missing (service {service}): build it with `make images` "
                "in the rig's checkout (no registry needed)"
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

    def run_service(
        self, name: str, publish: int, alias: str = "", wrapper: Sequence[str] = ()
    ) -> Container:
        spec = self.services[name]
        return self.run_container(
            alias or name,
            spec["image"],
            command=[*wrapper, *spec["command"]] if wrapper else spec.get("command"),
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

    def address(self, service: str) -> str:
        """The service's address on the run's network."""
        container = self.client.containers.get(f"{self.run_id}-{service}")
        return str(container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"])

    def exec(
        self,
        container: Container,
        command: list[str],
        timeout_s: float,
        environment: dict[str, str] | None = None,
    ) -> Executed:
        """Run a command in the container, bounded. docker-py's exec reads its
        output with no timeout, and on this engine (20.10, under a catalog's load)
        an exec was seen never to start nor end: the lane waited for good. A hung
        exec is left to its thread and the engine; the caller gets ExecHung."""
        api = self.client.api
        exec_id = api.exec_create(container.id, command, environment=environment)["Id"]
        output: list[bytes] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                output.append(api.exec_start(exec_id))
            except BaseException as error:  # noqa: BLE001 - raised in the caller's thread
                failed.append(error)

        thread = threading.Thread(target=run, name=f"exec-{command[0]}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise ExecHung(
                f"`{' '.join(command[:2])}` in container {container.name} did not return "
                f"within {timeout_s:g} s: the Docker engine's exec hung"
            )
        if failed:
            raise failed[0]
        exit_code = api.exec_inspect(exec_id)["ExitCode"]
        return Executed(int(exit_code), output[0].decode(errors="replace"))

    def remove_leftovers(self) -> list[str]:
        """Remove what interrupted runs under this RUNS_DIR left (labelled objects
        whose owner is gone); the runs' ids."""
        stale_runs = set()
        for container in self.client.containers.list(
            all=True, filters={"label": PROJECT_LABEL}, ignore_removed=True
        ):
            if self._interrupted(container.labels):
                stale_runs.add(container.labels.get(RUN_LABEL))
                try:
                    container.remove(force=True, v=True)
                except docker.errors.NotFound:  # its run, ending, or another start removed it
                    pass
        for network in self.client.networks.list(filters={"label": PROJECT_LABEL}):
            labels = network.attrs.get("Labels") or {}
            if self._interrupted(labels):
                stale_runs.add(labels.get(RUN_LABEL))
                try:
                    network.remove()
                except docker.errors.NotFound:
                    pass
        return sorted(filter(None, stale_runs))

    @staticmethod
    def _interrupted(labels: dict[str, str]) -> bool:
        """An object of a run under this RUNS_DIR (or of a rig too old to say)
        whose owner is gone."""
        if labels.get(RUNS_LABEL, str(RUNS_DIR)) != str(RUNS_DIR):
            return False  # another rig's, under another TMPDIR: its own start sweeps it
        owner = int(labels.get(OWNER_LABEL, "0"))
        return owner != os.getpid() and not alive(owner)

    def remove_containers(self, *labels: str) -> None:
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

    def close(self) -> None:
        """Remove the run's containers and its network."""
        self.remove_containers()
        for network in self.client.networks.list(filters={"label": f"{RUN_LABEL}={self.run_id}"}):
            try:
                network.remove()
            except docker.errors.NotFound:
                pass
        self.network = None


def _tmpfs(spec: dict[str, Any]) -> dict[str, str]:
    mounts = {}
    for entry in spec.get("tmpfs") or []:
        path, _, options = entry.partition(":")
        mounts[path] = options
    return mounts
