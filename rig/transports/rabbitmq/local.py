"""A private RabbitMQ node as local processes (Debian's rabbitmq-server).

Everything the node writes lives under the run's directory: its Mnesia data,
its Erlang cookie (HOME), its config. It listens on free loopback ports (AMQP,
Erlang distribution, and its own epmd), so it never meets a system RabbitMQ.
epmd runs in the foreground as a process of ours (not as the daemon erl would
start), so the run's pid file covers it, and the backend kills it with the
rest (LocalBackend.close, or the next start after an interrupted run).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rig.backends.base import Exit, free_port
from rig.backends.hosts import LocalHost, node_name
from rig.errors import BrokerDown, EnvironmentProblem
from rig.transports.rabbitmq import node
from rig.waiting import until_nothing_missing

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without the su wrapper
READY_S = 60.0
EPMD_READY_S = 10.0


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class LocalNode:
    def __init__(self, host: LocalHost, name: str) -> None:
        self.host = host
        self.service = node_name("rabbitmq", name)
        self.dir = host.dir / self.service
        self.port = free_port()
        self.url = f"amqp://{node.USER}:{node.USER}@127.0.0.1:{self.port}/{node.vhost(0)}"
        self.inside_url = self.url
        self.environment = {
            "RABBITMQ_NODENAME": f"rig-{host.dir.name}-{self.service}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "HOME": str(self.dir),  # the Erlang cookie, ours alone
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None
        try:
            self._start()
        except BaseException:
            self.close()  # a half-started node leaves nothing running
            raise

    def _start(self) -> None:
        """Start the node; it is ready once it accepts a real AMQP connection."""
        if not Path(SERVER).exists() or shutil.which("epmd") is None:
            raise EnvironmentProblem(
                "rabbitmq-server not found: install Debian's rabbitmq-server (`make setup` "
                "does, in the rig's checkout)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "definitions.json").write_text(json.dumps(node.definitions()))
        (self.dir / "rabbitmq.conf").write_text(
            node.node_config(f"127.0.0.1:{self.port}", str(self.dir / "definitions.json"))
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.epmd = self.host.spawn(
            f"{self.service}-epmd",
            ["epmd", "-port", self.environment["ERL_EPMD_PORT"]],
            self.environment,
        )
        # Listening before erl looks for it, or erl starts a daemon of its own,
        # outside the run's process groups.
        port = int(self.environment["ERL_EPMD_PORT"])
        missing = until_nothing_missing(
            lambda: "" if _listening(port) else f"epmd does not listen on 127.0.0.1:{port}",
            EPMD_READY_S,
            interval_s=0.02,
        )
        if missing:
            raise EnvironmentProblem(missing)
        self._start_server()

    def _start_server(self) -> None:
        self.server = self.host.spawn(self.service, [SERVER], self.environment)
        self._wait_answering()

    def _wait_answering(self) -> None:
        missing = until_nothing_missing(self._not_answering, READY_S, interval_s=0.1)
        if missing:
            raise EnvironmentProblem(f"{missing} after {READY_S:.0f} s: {self._log_tail()}")

    def _not_answering(self) -> str:
        """Why the node does not accept a connection yet ("" once it does); an
        exited server ends the wait at once."""
        assert self.server is not None
        if self.server.poll() is not None:
            raise EnvironmentProblem(f"rabbitmq-server exited: {self._log_tail()}")
        try:
            node.answering(self.url)
        except BrokerDown as error:
            return f"rabbitmq-server does not answer on {self.url} ({error})"
        return ""

    def _log_tail(self) -> str:
        log = self.dir.parent / f"{self.service}.log"
        return log.read_text(errors="replace")[-1500:] if log.exists() else "no log"

    def admin(self, expression: str, timeout_s: float = node.ADMIN_TIMEOUT_S) -> str:
        """The expression evaluated in this node (node.erl_call_args); the term's text.
        erl_call finds the node through our epmd (ERL_EPMD_PORT) with our cookie (HOME)."""
        name = self.environment["RABBITMQ_NODENAME"]
        try:
            done = subprocess.run(
                ["erl_call", *node.erl_call_args(name, timeout_s)],
                input=expression + "\n",
                env={**os.environ, **self.environment},
                capture_output=True,
                text=True,
                timeout=timeout_s + 5,
            )
        except subprocess.TimeoutExpired:
            raise BrokerDown(f"erl_call: no answer within {timeout_s + 5:g} s") from None
        return node.reply(done.returncode, done.stdout or done.stderr)

    def restart(self, persist: bool, while_down: Callable[[], None]) -> Exit | None:
        """The broker stopped and started again in its node (node.restart_broker)."""
        if not node.restart_broker(self.admin, persist, while_down):
            return None
        self._wait_answering()
        return Exit(time.time(), "rabbitmq broker stopped and started again")

    def close(self) -> None:
        """Kill the node's process groups (server, epmd)."""
        for process in (self.server, self.epmd):
            if process is not None:
                self.host.kill_group(process)
        self.server = self.epmd = None
