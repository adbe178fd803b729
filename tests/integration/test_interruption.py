"""The rig survives its own interruption, on both backends and both transports.

SIGTERM (or Ctrl-C) mid-scenario: the run removes what it started and
exits 130. SIGKILL mid-scenario leaves leftovers on purpose; the next start
finds them by label (Docker) or run directory (local), says so, removes
them and passes. On RabbitMQ that includes the node: its Erlang VM, its
epmd and its data directory (local), its container (Docker).

Each test's rigs run with a TMPDIR of their own, so their runs live in a
RUNS_DIR of their own: a rig that another test session starts meanwhile
sweeps only the interrupted runs under /tmp, never these. Without that, the
next start here could find the leftovers already gone (a CI run did).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from rig.backends.pids import same_process, zombie
from tests.helpers import ROOT, rig

SCENARIO = "late_ack_kill_after_commit_create"  # parks a task, so a run is mid-scenario for a while


class Rigs:
    """Rigs started with a TMPDIR of their own, and what they leave behind."""

    def __init__(self, backend: str, transport: str, tmpdir: Path) -> None:
        self.backend = backend
        self.transport = transport
        self.tmpdir = tmpdir
        self.runs_dir = tmpdir / "celery-rig"  # RUNS_DIR, as these rigs see it

    def start(self, scenario: str = SCENARIO) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "rig", "run", scenario, "--backend", self.backend]
            + ["--transport", self.transport],
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(self.tmpdir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def local_runs(self, owner: int) -> list[Path]:
        return [
            run
            for run in self.runs_dir.glob("run-*")
            if (run / "owner").exists() and (run / "owner").read_text().strip() == str(owner)
        ]

    def recorded_processes(self, owner: int) -> list[tuple[int, int]]:
        """(pid, start time) of every process the owner's local runs started."""
        recorded = []
        for run in self.local_runs(owner):
            pids = run / "pids"
            for line in pids.read_text().splitlines() if pids.exists() else []:
                pid, started = (int(field) for field in line.split())
                recorded.append((pid, started))
        return recorded

    def leftovers(self, owner: int) -> list[str]:
        """The owner's run folders (on either backend), and its Docker objects."""
        folders = [str(run) for run in self.local_runs(owner)]
        return folders + (docker_objects(owner) if self.backend == "docker" else [])

    def wait_for_workers(self, started: subprocess.Popen[str]) -> None:
        """Until the rig's workers run; a rig that ends first fails with its output."""
        wait_for(
            lambda: self.workers_running(started.pid) or started.poll() is not None,
            f"{self.backend} workers of pid {started.pid}",
        )
        if started.poll() is not None:
            output, _ = started.communicate()
            pytest.fail(f"the rig ended before its workers ran:\n{output}")

    def workers_running(self, owner: int) -> bool:
        if self.backend == "docker":
            return docker_workers_running(owner)
        # A local worker has started once its log is in the run's directory.
        return any(any(run.glob("w*.log")) for run in self.local_runs(owner))


def private_tmpdir() -> Path:
    """A TMPDIR as /tmp is: short (a local run's sockets live under it), and open
    to the PostgreSQL server, which runs as its own user under root."""
    tmpdir = Path(tempfile.mkdtemp(prefix="rig-"))
    tmpdir.chmod(0o1777)
    return tmpdir


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


def still_running(recorded: list[tuple[int, int]]) -> list[int]:
    return [pid for pid, started in recorded if same_process(pid, started) and not zombie(pid)]


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


@pytest.fixture(params=["docker", "local"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("docker_runner")  # skips, or fails in CI, without an engine
    return request.param


@pytest.fixture(params=["redis", "rabbitmq"])
def rigs(request: pytest.FixtureRequest, backend: str) -> Iterator[Rigs]:
    tmpdir = private_tmpdir()
    yield Rigs(backend, request.param, tmpdir)
    shutil.rmtree(tmpdir, ignore_errors=True)


@pytest.mark.integration
def test_sigterm_mid_scenario_removes_everything(rigs: Rigs) -> None:
    running = rigs.start()
    rigs.wait_for_workers(running)
    started = rigs.recorded_processes(running.pid)
    runs = rigs.local_runs(running.pid)
    running.send_signal(signal.SIGTERM)
    output, _ = running.communicate(timeout=90)
    assert running.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output, output
    assert rigs.leftovers(running.pid) == []
    assert still_running(started) == []
    assert processes_in(runs) == []


@pytest.mark.integration
def test_after_a_sigkill_the_next_start_cleans_up_and_passes(rigs: Rigs) -> None:
    killed = rigs.start()
    rigs.wait_for_workers(killed)
    runs = rigs.local_runs(killed.pid)
    killed.send_signal(signal.SIGKILL)  # no cleanup can run: leftovers stay behind
    killed.communicate(timeout=30)
    assert rigs.leftovers(killed.pid), "a SIGKILLed run should have left something behind"
    orphans = rigs.recorded_processes(killed.pid)  # redis-server and workers, local only
    if rigs.backend == "local":
        assert still_running(orphans), "the killed run's processes should still be running"

    again = rigs.start("early_ack_kill_before_write")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "removed leftovers of interrupted run(s)" in output, output
    assert rigs.leftovers(killed.pid) == []
    assert rigs.leftovers(again.pid) == []
    assert still_running(orphans) == []
    assert processes_in(runs) == []


def clean(tmpdir: Path | None, check: bool = True) -> str:
    """`celery-rig clean`, under this TMPDIR or (None) the tests' own."""
    done = rig("clean", env={"TMPDIR": str(tmpdir)} if tmpdir else None)
    assert done.returncode == 0 or not check, done.stdout + done.stderr
    return done.stdout


@pytest.mark.integration
def test_a_clean_under_another_tmpdir_leaves_a_killed_runs_leftovers_alone(backend: str) -> None:
    """What the tests above rely on: rigs sweep only the runs under their own
    TMPDIR. `clean` under /tmp leaves the killed run's leftovers; under its
    TMPDIR it removes them."""
    tmpdir = private_tmpdir()
    try:
        rigs = Rigs(backend, "redis", tmpdir)
        killed = rigs.start()
        rigs.wait_for_workers(killed)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
        left = rigs.leftovers(killed.pid)
        orphans = rigs.recorded_processes(killed.pid)

        clean(None)
        assert rigs.leftovers(killed.pid) == left, "a clean under /tmp swept another TMPDIR's run"
        if backend == "local":
            assert still_running(orphans), "a clean under /tmp killed another TMPDIR's processes"

        output = clean(tmpdir)
        assert rigs.leftovers(killed.pid) == [], output
        assert still_running(orphans) == [], output
    finally:  # whatever failed above, nothing of the killed run stays
        clean(tmpdir, check=False)
        shutil.rmtree(tmpdir, ignore_errors=True)
