"""Which backend runs the scenarios: --backend, else RIG_BACKEND, else Docker
when an engine answers and local processes when none does."""

from __future__ import annotations

import os

import docker
import docker.errors

from rig.backends.base import Backend
from rig.errors import BadInput

CHOICES = ("auto", "docker", "local")


def engine_answers() -> tuple[bool, str]:
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        version = client.version().get("Version", "?")
        client.close()
    except docker.errors.DockerException as error:
        return False, str(error).split("\n")[0][:160]
    return True, f"Docker engine {version} answers"


def decide(requested: str, probe: tuple[bool, str] | None) -> tuple[str, str]:
    """Pure choice: (backend name, the reason to print). probe is engine_answers() for auto."""
    if requested not in CHOICES:
        raise BadInput(f"backend {requested!r}: expected one of {', '.join(CHOICES)}")
    if requested != "auto":
        return requested, f"chosen with --backend/RIG_BACKEND={requested}"
    answers, why = probe if probe is not None else (False, "not probed")
    if answers:
        return "docker", why
    return "local", f"no Docker engine answers ({why}): running on local processes"


def choose(requested: str | None) -> Backend:
    requested = requested or os.environ.get("RIG_BACKEND") or "auto"
    name, reason = decide(requested, engine_answers() if requested == "auto" else None)
    if name == "docker":
        from rig.backends.docker import DockerBackend

        return DockerBackend(reason)
    from rig.backends.local import LocalBackend

    return LocalBackend(reason)
