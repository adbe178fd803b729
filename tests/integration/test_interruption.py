"""The rig survives its own interruption, on both backends and both transports.

SIGTERM (or Ctrl-C) mid-scenario: the run removes what it started and
exits 130. SIGKILL mid-scenario leaves leftovers on purpose; the next start
finds them by label (Docker) or run directory (local), says so, removes
them and passes. On RabbitMQ that includes the node: its Erlang VM, its
epmd and its data directory (local), its container (Docker).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from rig.backends.pids import same_process, zombie
from rig.backends.run_dir import RUNS_DIR
from tests.helpers import ROOT

SCENARIO = "late_ack_kill_after_commit_create"  # parks a task, so a run is mid-scenario for a while


def start_rig(backend: str, transport: str, scenario: str = SCENARIO) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rig", "run", scenario, "--backend", backend]
        + ["--transport", transport],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    met = retry(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(0.2),
        retry=retry_if_result(lambda ok: not ok),
        retry_error_callback=lambda state: False,  # the condition's last answer
    )(condition)()
    assert met, f"timed out after {timeout_s:.0f} s waiting for {what}"


# --- what each backend leaves behind ----------------------------------------
def docker_objects(owner: int) -> list[str]:
    import docker

    from rig.backends.docker_engine import OWNER_LABEL, PROJECT_LABEL

    client = docker.from_env()
    labels = {"label": [PROJECT_LABEL, f"{OWNER_LABEL}={owner}"]}
    containers = [
        c.name for c in client.containers.list(all=True, filters=labels, ignore_removed=True)
    ]
    networks = [n.name for n in client.networks.list(filters=labels)]
    volumes = [v.name for v in client.volumes.list(filters=labels)]
    return containers + networks + volumes


def docker_workers_running(owner: int) -> bool:
    import docker

    from rig.backends.docker_engine import OWNER_LABEL, ROLE_LABEL

    labels = {"label": [f"{ROLE_LABEL}=worker", f"{OWNER_LABEL}={owner}"]}
    return bool(docker.from_env().containers.list(filters=labels, ignore_removed=True))


def local_runs(owner: int) -> list[Path]:
    return [
        run
        for run in RUNS_DIR.glob("run-*")
        if (run / "owner").exists() and (run / "owner").read_text().strip() == str(owner)
    ]


def recorded_processes(owner: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process the owner's local runs started."""
    recorded = []
    for run in local_runs(owner):
        pids = run / "pids"
        for line in pids.read_text().splitlines() if pids.exists() else []:
            pid, started = (int(field) for field in line.split())
            recorded.append((pid, started))
    return recorded


def still_running(recorded: list[tuple[int, int]]) -> list[int]:
    return [pid for pid, started in recorded if same_process(pid, started) and not zombie(pid)]


def local_workers_running(owner: int) -> bool:
    """A worker has started once its log is in the run's directory."""
    return any(any(run.glob("w*.log")) for run in local_runs(owner))


def processes_in(runs: list[Path]) -> list[str]:
    """Any live process whose command line names one of these run directories
    (the Erlang VM of a local RabbitMQ node names its home there)."""
    names = [str(run) for run in runs]
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if any(name in text for name in names) and not zombie(int(cmdline.parent.name)):
            found.append(f"{cmdline.parent.name}: {text[:120]}")
    return found


LEFTOVERS = {
    "docker": lambda owner: docker_objects(owner),
    "local": lambda owner: [str(p) for p in local_runs(owner)],
}
WORKERS_RUNNING = {"docker": docker_workers_running, "local": local_workers_running}


@pytest.fixture(params=["docker", "local"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_runner")  # skips, or fails in CI, without an engine
    return request.param


@pytest.fixture(params=["redis", "rabbitmq"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.integration
def test_sigterm_mid_scenario_removes_everything(backend: str, transport: str) -> None:
    rig = start_rig(backend, transport)
    wait_for(lambda: WORKERS_RUNNING[backend](rig.pid), f"{backend} workers of pid {rig.pid}")
    started = recorded_processes(rig.pid)
    runs = local_runs(rig.pid)
    rig.send_signal(signal.SIGTERM)
    output, _ = rig.communicate(timeout=90)
    assert rig.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    assert LEFTOVERS[backend](rig.pid) == []
    assert still_running(started) == []
    assert processes_in(runs) == []


@pytest.mark.integration
def test_after_a_sigkill_the_next_start_cleans_up_and_passes(backend: str, transport: str) -> None:
    killed = start_rig(backend, transport)
    wait_for(lambda: WORKERS_RUNNING[backend](killed.pid), f"{backend} workers of pid {killed.pid}")
    runs = local_runs(killed.pid)
    killed.send_signal(signal.SIGKILL)  # no cleanup can run: leftovers stay behind
    killed.communicate(timeout=30)
    assert LEFTOVERS[backend](killed.pid), "a SIGKILLed run should have left something behind"
    orphans = recorded_processes(killed.pid)  # redis-server and workers, local only
    if backend == "local":
        assert still_running(orphans), "the killed run's processes should still be running"

    again = start_rig(backend, transport, "early_ack_kill_before_write")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "removed leftovers of interrupted run(s)" in output, output
    assert LEFTOVERS[backend](killed.pid) == []
    assert LEFTOVERS[backend](again.pid) == []
    assert still_running(orphans) == []
    assert processes_in(runs) == []
