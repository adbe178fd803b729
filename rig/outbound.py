"""What a task sends outside the rig: answered by the rig, recorded, never sent.

Every process that loads a user's app (rig.agent: the workers, the probe, the
producer) installs two things before the app is imported:

- **the HTTP sink**: a request made through urllib3 (so requests, botocore,
  the Sentry SDK and anything else built on it) or httpx (sync and async) is
  answered here, in the process, with the sink's status and body, and never
  leaves it. Each call is
  recorded on the execution that made it, between the points `before_http`
  and `after_http`. An idempotency key (the `Idempotency-Key` header, or the
  one the sink is told to read) is honoured as a payment provider does: a
  repeat within the key's lifetime gets the first answer and has no second
  effect (the control store remembers keys across workers);
- **the connection guard**: any other TCP connection to a place that is not
  one of the rig's own services (its broker, control store, database) is
  refused and recorded: a raw socket, http.client, urllib.request, aiohttp,
  or the project's own Redis read from a setting the rig does not know about. The
  checker turns a refused connection into the run's error, naming it.

Mail is counted by the rig's mail backend (rig.mail), through `record`.
Light on purpose: imported in every worker; urllib3 and httpx only if installed.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import io
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rig import contract
from rig.checkpoints import checkpoint, control, current

BEFORE_HTTP, AFTER_HTTP, AFTER_EMAIL = "before_http", "after_http", "after_email"
POINTS = (BEFORE_HTTP, AFTER_HTTP, AFTER_EMAIL)  # passed only by tasks that call out
KEY_HEADER = "Idempotency-Key"
DEFAULT_PORTS = {"redis": 6379, "rediss": 6380, "amqp": 5672, "amqps": 5671, "postgres": 5432}
DEFAULT_PORTS["postgresql"] = DEFAULT_PORTS["postgres"]
CALLS, EMAILS, REFUSED = "calls", "emails", "refused"  # the ledger record's lists

Recorder = Callable[[str, dict[str, Any]], None]
_recorder: Recorder | None = None  # rig.agent's: appends to the running execution's record


def record(kind: str, effect: dict[str, Any]) -> None:
    """Note an effect on the running execution's ledger record (if any)."""
    if _recorder is not None and current() is not None:
        _recorder(kind, effect)


@dataclass(frozen=True)
class Sink:
    """How the sink answers: the settings' http_status, http_body,
    idempotency_header and idempotency_key_seconds, passed to every process as
    JSON (rig.settings.Settings.worker_environment)."""

    status: int = 200
    body: str = "{}"
    key_header: str = KEY_HEADER
    key_seconds: float = 86400.0  # 0: keys are not honoured, every call has an effect

    @classmethod
    def from_environment(cls) -> Sink:
        return cls(**json.loads(os.environ.get(contract.SINK) or "{}"))

    def answer(self, method: str, host: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        """Record the call on the running execution; the status and body it gets."""
        key = _header(headers, self.key_header) or _header(headers, KEY_HEADER)
        checkpoint(BEFORE_HTTP)
        replayed, (status, body) = self._first_answer(host, key)
        record(
            CALLS,
            {"method": method, "host": host, "path": path, "key": key, "replayed": replayed},
        )
        checkpoint(AFTER_HTTP)
        return status, body

    def _first_answer(self, host: str, key: str) -> tuple[bool, tuple[int, str]]:
        """(replayed, answer): a key seen within its lifetime gets its first answer."""
        answer = (self.status, self.body)
        client = control()
        if not key or not self.key_seconds or client is None:
            return False, answer
        name = f"rig:sink:{host}:{key}"
        if client.set(name, json.dumps(answer), nx=True, px=int(self.key_seconds * 1000)):
            return False, answer
        stored = client.get(name)
        if stored:
            status, body = json.loads(stored)
            answer = (int(status), str(body))
        return True, answer


def _header(headers: dict[str, str], name: str) -> str:
    wanted = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == wanted), "")


def install(recorder: Recorder) -> None:
    """The sink and the guard in this process, once; effects go to `recorder`."""
    global _recorder
    if _recorder is not None:
        return
    _recorder = recorder
    sink = Sink.from_environment()
    _install_urllib3(sink)
    _install_httpx(sink)
    _install_guard(RigEndpoints.from_environment())


# --- urllib3 ------------------------------------------------------------------
def _install_urllib3(sink: Sink) -> None:
    try:
        from urllib3 import HTTPResponse
        from urllib3.connectionpool import HTTPConnectionPool
    except ImportError:  # no urllib3 here: nothing can call out through it
        return

    def urlopen(pool: Any, method: str, url: str, body: Any = None, headers: Any = None,
                **options: Any) -> HTTPResponse:  # fmt: skip
        status, text = sink.answer(method, str(pool.host), _path(url), dict(headers or {}))
        content = text.encode()
        return HTTPResponse(
            body=io.BytesIO(content),
            headers={"Content-Type": "application/json", "Content-Length": str(len(content))},
            status=status,
            reason="rig sink",
            preload_content=options.get("preload_content", True),
            decode_content=options.get("decode_content", True),
            request_method=method,
            request_url=url,
        )

    HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign, assignment]


# --- httpx --------------------------------------------------------------------
def _install_httpx(sink: Sink) -> None:
    """httpx's transports answer from the sink (httpx is not a dependency of the
    rig: imported by name, only where the project installed it)."""
    if importlib.util.find_spec("httpx") is None:
        return
    httpx = importlib.import_module("httpx")

    def answer(request: Any) -> Any:
        url = request.url
        status, text = sink.answer(request.method, url.host, url.path or "/", dict(request.headers))
        headers = {"Content-Type": "application/json"}
        return httpx.Response(status, headers=headers, content=text.encode(), request=request)

    def handle_request(transport: Any, request: Any) -> Any:
        return answer(request)

    async def handle_async_request(transport: Any, request: Any) -> Any:
        return answer(request)

    httpx.HTTPTransport.handle_request = handle_request
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request


def _path(url: str) -> str:
    """The path of a pool's request URL: absolute (through a proxy) or not; no query."""
    return (urlsplit(url).path if "://" in url else url.split("?", 1)[0]) or "/"


# --- the connection guard -----------------------------------------------------
@dataclass
class RigEndpoints:
    """The rig's own services as this process reaches them: the only places a
    TCP connection may go. Names are resolved again on a miss (a restarted
    broker container may come back at another address); an address once
    known stays allowed (a partitioned worker cannot resolve names at all)."""

    names: tuple[tuple[str, int], ...]
    addresses: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_environment(cls) -> RigEndpoints:
        urls = [os.environ.get(name, "") for name in contract.SERVICE_URLS]
        endpoints = cls(tuple(filter(None, (_host_port(url) for url in urls))))
        endpoints.resolve()
        return endpoints

    def resolve(self) -> None:
        found: set[tuple[str, int]] = set()
        for host, port in self.names:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:
                continue  # not resolvable now: a later miss tries again
            found |= {(str(info[4][0]), port) for info in infos}
        self.addresses |= found

    def allows(self, host: str, port: int) -> bool:
        if (host, port) in self.addresses:
            return True
        self.resolve()
        return (host, port) in self.addresses


def _host_port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 0)


def _install_guard(endpoints: RigEndpoints) -> None:
    if not endpoints.names:
        return  # not a rig-run process (no services named): nothing to guard
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refused(sock: socket.socket, address: Any) -> str:
        """Why this connection may not be made, or "" if it may."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return ""
        host, port = str(address[0]), int(address[1])
        try:
            resolved = socket.getaddrinfo(host, port, sock.family, socket.SOCK_STREAM)
            ip = str(resolved[0][4][0])
        except OSError:
            return ""  # no such name: the connection fails on its own, having gone nowhere
        if endpoints.allows(ip, port):
            return ""
        where = f"{host}:{port}"
        record(REFUSED, {"address": where})
        return where

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        where = refused(sock, address)
        if where:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{where} is not one of the rig's")
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        return errno.ECONNREFUSED if refused(sock, address) else connect_ex(sock, address)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign, assignment]
