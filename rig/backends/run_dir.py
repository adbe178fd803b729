"""A local run's directory, RUNS_DIR/<run id>, and the processes started in it:
the primitives a transport's broker node gets on the local backend
(rig.backends.hosts.LocalHost).

The directory holds an `owner` file (the controller's pid) and a `pids` file
(every process group started, as pid and start time). A run whose owner is
gone was interrupted: the next start under the same RUNS_DIR (it follows
TMPDIR) kills its processes and removes its directory, on either backend.
Every process a run starts also carries the run's directory in its
environment (RUN_ENV), and its pool children inherit it: a process started
a moment before the controller was killed, too late to be in `pids`, is
found by that (a CI run once left such a worker running).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from rig.backends.base import last_line
from rig.backends.forkserver import ForkServer
from rig.backends.pids import alive, same_process, start_time

RUNS_DIR = Path(tempfile.gettempdir()) / "celery-rig"
RUN_ENV = "RIG_LOCAL_RUN"  # in every process a local run starts: the run's directory


def remove_stale_runs(runs_dir: Path = RUNS_DIR) -> list[str]:
    """Kill the processes of interrupted runs and remove their directories."""
    cleaned = []
    for run_dir in sorted(runs_dir.glob("run-*")):
        if _is_live(run_dir):
            continue
        pids_file = run_dir / "pids"
        for line in pids_file.read_text().splitlines() if pids_file.exists() else []:
            pid, started = (int(field) for field in line.split())
            if same_process(pid, started):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(run_dir, ignore_errors=True)
        cleaned.append(run_dir.name)
    for run_dir, pid in _marked_processes(runs_dir):
        if not _is_live(run_dir):  # interrupted, or its directory already gone
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if run_dir.name not in cleaned:
                cleaned.append(run_dir.name)
    _remove_if_empty(runs_dir)
    return cleaned


def _is_live(run_dir: Path) -> bool:
    """Its controller is this process or another that is still running."""
    try:
        owner = int((run_dir / "owner").read_text())
    except (OSError, ValueError):  # no directory, or no owner in it
        return False
    return owner == os.getpid() or (owner != 0 and alive(owner))


def _marked_processes(runs_dir: Path) -> list[tuple[Path, int]]:
    """Processes whose environment names a run directory in runs_dir (RUN_ENV)."""
    marker = f"{RUN_ENV}=".encode()
    marked = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        for variable in environment.split(b"\0"):
            if variable.startswith(marker):
                run_dir = Path(variable[len(marker) :].decode(errors="replace"))
                if run_dir.parent == runs_dir:
                    marked.append((run_dir, int(entry.name)))
                break
    return marked


def _remove_if_empty(runs_dir: Path) -> None:
    """No empty RUNS_DIR left behind; one that holds another live run stays."""
    try:
        runs_dir.rmdir()
    except OSError:  # not empty (a run beside this one), or already gone
        pass


class Process(Protocol):
    """What a run needs of a process it started: Popen, or a worker the fork
    server started (rig.backends.forkserver.ForkedProcess)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class RunDirectory:
    def __init__(self, run_id: str) -> None:
        self.dir = RUNS_DIR / run_id

    def create(self) -> None:
        try:
            self.dir.mkdir(parents=True)
        except FileNotFoundError:  # another run removed the empty RUNS_DIR in between
            self.dir.mkdir(parents=True)
        (self.dir / "owner").write_text(str(os.getpid()))

    def spawn(
        self, name: str, command: list[str], env: dict[str, str], stdin: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            cwd=self.dir,
            env=self.environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            # Its own process group, so a kill takes the worker and its pool children.
            start_new_session=True,
        )
        log.close()
        self.record(process)
        return process

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        return {**os.environ, **env, RUN_ENV: str(self.dir)}

    def start_fork_server(self, env: dict[str, str]) -> tuple[ForkServer, subprocess.Popen[bytes]]:
        """The fork server (rig.backends.forkserver) this run's workers start from,
        and its process; its stdin is a pipe from here, whose end ends it and its
        workers."""
        socket_path, log = self.dir / "forkserver.sock", self.dir / "forkserver.log"
        server = self.spawn(
            "forkserver", ForkServer.command(str(socket_path)), env, stdin=subprocess.PIPE
        )

        def ended() -> str | None:
            return None if server.poll() is None else last_line(log.read_text(errors="replace"))

        return ForkServer(socket_path, ended, local=True), server

    def fork(
        self, server: ForkServer, name: str, command: list[str], env: dict[str, str]
    ) -> Process:
        """`command` (`python -m MODULE ARGS`) forked from `server`, as spawn would
        start it: its own session, logged to <dir>/<name>.log, its pid recorded."""
        if command[1] != "-m":
            raise ValueError(f"the fork server runs `python -m MODULE`, not {command!r}")
        # Its temporary files (billiard's pymp-* among them, left by a killed
        # worker) go with the run's directory.
        tmp = self.dir / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {**env, "TMPDIR": str(tmp)}
        process = server.spawn(
            command[2],
            command[3:],
            self.environment(env),
            str(self.dir),
            str(self.dir / f"{name}.log"),
        )
        self.record(process)
        return process

    def record(self, process: Process) -> None:
        """A process group started for this run (its leader), for a leftover's cleanup."""
        with (self.dir / "pids").open("a") as pids:
            pids.write(f"{process.pid} {start_time(process.pid)}\n")

    def kill_group(self, process: Process) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        _remove_if_empty(self.dir.parent)
