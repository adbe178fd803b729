"""What tests in both rooms share: the repository's root, the real command
line run as a user runs it, and a listener that tells whether anything reached it."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The command line's subcommands, by name (cli.build_parser)."""
    from rig import cli

    parser = cli.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices


def rig(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clear_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, f"exit {result.returncode}, expected {code}:\n{output}"
    assert "Traceback" not in output, output
    for needle in needles:
        assert needle in output, f"{needle!r} not in:\n{output}"


@dataclass
class Listener:
    """A real port that counts the connections it accepts."""

    sock: socket.socket
    accepted: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        while True:
            try:
                connection, address = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted.append(f"{address[0]}:{address[1]}")
            connection.close()


def listening() -> Iterator[Listener]:
    """A Listener on a free loopback port, for as long as the generator lives (a fixture)."""
    sock = socket.create_server(("127.0.0.1", 0))
    listener = Listener(sock)
    threading.Thread(target=listener.serve, daemon=True).start()
    yield listener
    sock.close()
