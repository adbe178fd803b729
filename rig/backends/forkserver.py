"""A fork server for the workers of both backends: Celery, kombu and Django
imported once, each worker forked from it.

Why: a worker started fresh spends about a second of CPU importing Celery's
command line, its worker and Django before it reads its first setting; over
a catalog of about 240 workers that was most of the catalog's CPU
(docs/measurements.md). Forked from a process that has imported them, a
worker starts with them in memory and goes on as `python -m celery ...`
would from there: its own session (so a kill of its group takes its pool
children, and nothing of the server), the run's environment and working
directory, its log on stdout and stderr. The user's app is imported after
the fork, by the worker itself, as before: nothing here reads a setting, a
URL or the user's code.

Protocol, over a Unix socket, one connection per worker: the controller
sends one JSON line (module, args, env, cwd, log) and reads `{"pid": N}`,
then, when the worker has exited, `{"exit": CODE}` (CODE as Popen's
returncode: negative for a signal). On the local backend the server reads
its stdin, a pipe from the controller: at its end (the controller is gone)
it kills every worker's group and exits, so an interrupted run leaves none
of them behind. On Docker it runs in a worker's slot container
(rig.backends.docker_workers), its socket in a directory shared with the
host, and ends with its container.

`python -m rig.backends.forkserver SOCKET` runs the server; `ForkServer` is
the controller's side, and `ForkedProcess` what it hands back: a process
with the part of Popen's interface the backend uses (pid, poll, wait).
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rig import isolation

# What a worker imports before it reads any setting or the user's app: the
# same modules whatever the run, none of which reads a setting as it loads
# (no model module: a model needs the app registry, hence the settings).
# Django's are optional (a project without it).
PRELOAD = (
    "celery.bin.celery",
    "celery.apps.worker",
    "celery.worker.consumer",
    "celery.concurrency.prefork",
    "celery.backends.redis",
    "kombu.transport.redis",
    "kombu.transport.pyamqp",
    "redis",
    "django.conf",
    "django.db.models",
    "django.core.management",
    "django.db.backends.postgresql.base",
    "rig.checkpoints",
    "rig.outbound",
)
START_TIMEOUT_S = 30.0  # the server imports PRELOAD once, on a loaded machine
REQUEST_TIMEOUT_S = 10.0


# --- the server ------------------------------------------------------------
def preload() -> None:
    """Import PRELOAD with no settings to find: whatever a module might read
    as it loads, no project's settings are read here, before the guard that
    each worker installs (rig.agent)."""
    for name in ("DJANGO_SETTINGS_MODULE", *isolation.CELERY_ENVIRONMENT):
        os.environ.pop(name, None)
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except Exception:  # not installed, or needs settings: the worker imports it itself
            pass
    django_conf = sys.modules.get("django.conf")
    if django_conf is not None and django_conf.settings.configured:
        sys.exit("the fork server's imports configured Django's settings; refusing to fork")


class Server:
    def __init__(self, path: str, owned: bool) -> None:
        """`owned`: stdin is a pipe from the controller (the local backend); a
        container's server ends with its container instead."""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        if owned:
            self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "owner")
        self.children: dict[int, tuple[socket.socket, int]] = {}  # pid -> (connection, pidfd)

    def serve(self) -> NoReturn:
        while True:
            for key, _events in self.selector.select():
                if key.data == "accept":
                    self.accept()
                elif key.data == "owner":
                    if not os.read(sys.stdin.fileno(), 4096):  # the controller is gone
                        self.kill_all()
                        os._exit(0)
                else:
                    self.reap(key.data)

    def accept(self) -> None:
        connection, _address = self.listener.accept()
        connection.settimeout(REQUEST_TIMEOUT_S)
        try:
            request = json.loads(connection.makefile("rb").readline())
        except (OSError, ValueError):
            connection.close()
            return
        pid = os.fork()
        if pid == 0:
            become(request, lambda: self.close_in_child(connection))
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (connection, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        send(connection, {"pid": pid})

    def close_in_child(self, connection: socket.socket) -> None:
        """What a child must not keep: the server's sockets and watches."""
        for other, pidfd in self.children.values():
            other.close()
            os.close(pidfd)
        for closable in (connection, self.listener, self.selector):
            closable.close()

    def reap(self, pid: int) -> None:
        connection, pidfd = self.children.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _pid, status = os.waitpid(pid, 0)
        send(connection, {"exit": os.waitstatus_to_exitcode(status)})
        connection.close()

    def kill_all(self) -> None:
        for pid in self.children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def send(connection: socket.socket, message: dict[str, int]) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:  # the controller stopped listening for this one
        pass


def become(request: dict[str, Any], close_inherited: Callable[[], None]) -> NoReturn:
    """In the child: `python -m MODULE ARGS` in its own session, with the
    request's environment over the server's, in its working directory (if
    any), its output to its log; never returns."""
    code = 1
    try:
        close_inherited()
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if request["cwd"]:
            os.chdir(request["cwd"])
        os.environ.update(request["env"])
        time.tzset()  # a TZ of the run's, read as a fresh interpreter would
        # A fresh interpreter puts PYTHONPATH first on sys.path.
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [p for p in paths if p not in sys.path]
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        if not isinstance(exit.code, int | None):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


# --- the controller's side ---------------------------------------------------
class ForkedProcess:
    """A worker the server forked: pid, poll() and wait(timeout) as Popen's."""

    def __init__(self, connection: socket.socket, args: list[str], kill_orphan: bool) -> None:
        """`kill_orphan`: if the server goes without a word, kill the worker's
        group by its pid (a container's worker goes with its container)."""
        self.args = args
        self.kill_orphan = kill_orphan
        self.stream = connection.makefile("rb")
        reply = self.stream.readline()
        if not reply:
            raise OSError("the fork server closed the connection before it forked")
        self.pid: int = json.loads(reply)["pid"]
        self.returncode: int | None = None
        self.exited_at = 0.0  # when its exit was reported (time.time())
        self._exited = threading.Event()
        connection.settimeout(None)
        threading.Thread(target=self._read_exit, args=(connection,), daemon=True).start()

    def _read_exit(self, connection: socket.socket) -> None:
        try:
            line = self.stream.readline()
        except OSError:
            line = b""
        if line:
            self.returncode = json.loads(line)["exit"]
        else:  # the server is gone without a word: nothing reports this worker's end now
            if self.kill_orphan:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.returncode = -signal.SIGKILL
        self.exited_at = time.time()
        connection.close()
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode


class ForkServer:
    """The controller's handle on one server: its socket as the controller
    reaches it (`path`), and why it ended (`ended`: None while it runs)."""

    def __init__(self, path: Path, ended: Callable[[], str | None], local: bool) -> None:
        self.path = path
        self.ended = ended
        self.local = local  # its workers' pids are this machine's (not a container's)

    @staticmethod
    def command(socket_path: str, python: str = sys.executable, owned: bool = True) -> list[str]:
        return [python, "-m", "rig.backends.forkserver", socket_path, *(["--owned"] * owned)]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            why = self.ended()
            if why is not None:
                raise OSError(f"the fork server exited: {why}")
            try:
                with self._connect():
                    return  # accepts connections: the preload is done
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.05)
        raise OSError(f"the fork server did not answer within {START_TIMEOUT_S:.0f} s")

    def spawn(
        self, module: str, args: list[str], env: dict[str, str], cwd: str, log: str
    ) -> ForkedProcess:
        """`cwd` and `log` as the server sees them ("" cwd: the server's own)."""
        connection = self._connect()
        request = {"module": module, "args": args, "env": env, "cwd": cwd, "log": log}
        connection.sendall(json.dumps(request).encode() + b"\n")
        return ForkedProcess(connection, [module, *args], kill_orphan=self.local)

    def _connect(self) -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(REQUEST_TIMEOUT_S)
        try:
            connection.connect(str(self.path))
        except OSError:
            connection.close()
            raise
        return connection


if __name__ == "__main__":
    preload()
    Server(sys.argv[1], owned="--owned" in sys.argv[2:]).serve()
