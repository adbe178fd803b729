"""The Docker backend's slot containers (rig.backends.docker_workers), on a
real engine: a worker forked in a slot is signalled by its pid on this
machine and its exit comes back; a clean slot takes the next worker; a slot
a pause touched goes with its worker; nothing is left at the end."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from rig import compose
from rig.backends.docker_engine import RUN_LABEL, DockerEngine
from rig.backends.docker_events import WorkerEvents
from rig.backends.docker_workers import RIG_MOUNT, RIG_PACKAGE, WorkerContainers
from rig.waiting import until_nothing_missing

PROBE = textwrap.dedent(
    """
    import os, sys, time
    print("up", os.environ["PROBE_NAME"], "sid", os.getsid(0) == os.getpid(), flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def slots(docker_runner: Any, tmp_path: Path) -> Iterator[tuple[WorkerContainers, DockerEngine]]:
    """A run of its own on the engine (its label, network and directory)."""
    client = docker.from_env()
    run_id = f"celery-rig-test-{uuid.uuid4().hex[:8]}"
    engine = DockerEngine(client, run_id)
    engine.create_network()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o777)  # the image's user writes its socket and logs there
    events = WorkerEvents(client, f"{RUN_LABEL}={run_id}")
    workers = WorkerContainers(engine, events, run_dir)
    try:
        yield workers, engine
    finally:
        workers.remove()
        engine.close()


def _options(project: Path, name: str) -> dict[str, Any]:
    return {
        "command": ["forkprobe"],
        "environment": {"PROBE_NAME": name, "PYTHONPATH": f"{RIG_MOUNT}:{project}"},
        "volumes": {
            str(RIG_PACKAGE): {"bind": f"{RIG_MOUNT}/rig", "mode": "ro"},
            str(project): {"bind": str(project), "mode": "ro"},
        },
        "working_dir": str(project),
    }


def _wait_up(workers: WorkerContainers, name: str) -> None:
    def not_up() -> bool:
        return f"up {name} sid True" not in workers.logs([name]).get(name, "")

    assert not until_nothing_missing(not_up, 30, 0.05), f"{name} did not start: {workers.logs()}"


def _running(engine: DockerEngine) -> list[str]:
    label = {"label": f"{RUN_LABEL}={engine.run_id}"}
    return sorted(c.name for c in engine.client.containers.list(all=True, filters=label))


@pytest.mark.integration
def test_slots_are_reused_when_clean_removed_when_touched_and_gone_at_the_end(
    slots: tuple[WorkerContainers, DockerEngine], tmp_path: Path
) -> None:
    workers, engine = slots
    project = tmp_path / "project"
    project.mkdir()
    (project / "forkprobe.py").write_text(PROBE)
    image = engine.service_spec(compose.WORKER_TEMPLATE)["image"]

    workers.start("w1", image, _options(project, "w1"))
    _wait_up(workers, "w1")
    assert workers.signal("w1", "SIGKILL")  # by its pid on this machine, its group
    killed = workers.wait_exit("w1", 10)
    assert killed is not None and "exit status -9" in killed.detail
    workers.remove(["w1"])

    workers.start("w2", image, _options(project, "w2"))  # the clean slot, again
    _wait_up(workers, "w2")
    assert workers.workers["w2"].slot.name == "slot-1"
    assert _running(engine) == [f"{engine.run_id}-slot-1"]

    assert workers.pause("w2") is not None
    workers.resume("w2")
    workers.remove(["w2"])  # a paused slot is not reused: it goes with its worker
    assert _running(engine) == []

    workers.start("w3", image, _options(project, "w3"))
    _wait_up(workers, "w3")
    assert workers.workers["w3"].slot.name == "slot-2"
    workers.remove()
    assert _running(engine) == []
