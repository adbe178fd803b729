"""The unit room: no broker, no Docker, no worker. A test here that opens a
network connection fails, so a live test cannot settle here by mistake
(a command line run in a subprocess is the user's, and is not watched)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


def _refuse(_socket: socket.socket, address: Any) -> None:
    raise ConnectionRefusedError(f"a unit test opened a connection to {address!r}")


@pytest.fixture(autouse=True)
def _no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
