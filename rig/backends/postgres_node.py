"""A private PostgreSQL server as a local process (Debian's postgresql).

`initdb` makes a cluster under the run's directory; `postgres` serves it on a
free loopback port, with its socket in the same directory, so it never meets
a system PostgreSQL or the project's own. Durability is off (fsync,
synchronous commit): the cluster lives as long as the run. PostgreSQL refuses
to run as root, so as root it runs as Debian's `postgres` user (setpriv execs,
so the process the run's pid file records is the server itself).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg

from rig.backends.base import free_port
from rig.errors import EnvironmentProblem
from rig.waiting import until_nothing_missing

BINARIES = Path("/usr/lib/postgresql")  # Debian's: <major>/bin/{initdb,postgres}
READY_S = 30.0
USER = "rig"
PORT_ATTEMPTS = 3
PORT_TAKEN = b"Address already in use"
Spawn = Callable[[str, list[str], dict[str, str]], "subprocess.Popen[bytes]"]


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = [
        path.parent for path in BINARIES.glob("*/bin/initdb") if (path.parent / "postgres").exists()
    ]
    return max(found, key=lambda path: int(path.parent.name), default=None)


class LocalPostgres:
    def __init__(
        self, run_dir: Path, spawn: Spawn, bin_dir: Path, settings: dict[str, str] | None = None
    ) -> None:
        self.dir = run_dir / "postgres"
        self.log = run_dir / "postgres.log"  # spawn's log of the server, by its name
        self.spawn = spawn
        self.bin = bin_dir
        self.port = 0  # chosen as the server starts
        self.server: subprocess.Popen[bytes] | None = None
        # Durability off: the cluster lives as long as the run.
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        self.settings |= settings or {}

    def _as_owner(self) -> list[str]:
        if os.getuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]

    def start(self) -> None:
        """initdb, then the server; ready once it accepts a connection."""
        self.dir.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        done = subprocess.run(
            [
                *self._as_owner(),
                *(str(self.bin / "initdb"), "-D", str(data), "-U", USER),
                *("--auth=trust", "--encoding=UTF8", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise EnvironmentProblem(f"initdb failed: {(done.stderr or done.stdout).strip()}")
        for _attempt in range(PORT_ATTEMPTS):
            if self._serve(data):
                return
        raise EnvironmentProblem(f"postgres exited: {self._log_tail()}")

    def _serve(self, data: Path) -> bool:
        """The server on a free port; False if another process took that port
        between its choice and the bind (this machine runs other servers too)."""
        self.port = free_port()
        command = [
            *self._as_owner(),
            *(str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port)),
            *("-h", "127.0.0.1", "-k", str(self.dir)),
            *(f"-c{name}={value}" for name, value in self.settings.items()),
        ]
        logged = self.log.stat().st_size if self.log.exists() else 0
        self.server = self.spawn("postgres", command, {})
        try:
            missing = until_nothing_missing(self._not_answering, READY_S, interval_s=0.1)
        except EnvironmentProblem:
            if PORT_TAKEN in self.log.read_bytes()[logged:]:
                return False
            raise
        if missing:
            raise EnvironmentProblem(f"{missing} after {READY_S:.0f} s: {self._log_tail()}")
        return True

    @property
    def url(self) -> str:
        """The server's, once it has started (its port is chosen then)."""
        return f"postgres://{USER}@127.0.0.1:{self.port}/postgres"

    def _not_answering(self) -> str:
        assert self.server is not None
        if self.server.poll() is not None:
            raise EnvironmentProblem(f"postgres exited: {self._log_tail()}")
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError as error:
            return f"postgres does not answer on 127.0.0.1:{self.port} ({error})"
        return ""

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else "no log"
