"""Reads docker-compose.yml, the one definition of the topology.

The rig starts the services it needs itself (through the Docker SDK, or as
local processes), but takes images, commands, environments and health
checks from the same file `make up` uses, with ${VAR:-default} resolved
from the environment as docker-compose would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rig.errors import EnvironmentProblem

COMPOSE_FILE = Path(__file__).resolve().parent / "docker-compose.yml"  # a link in the repo
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: environ.get(m["name"]) or (m["default"] or ""), value)
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    return value


def load_services(path: Path = COMPOSE_FILE) -> dict[str, dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise EnvironmentProblem(f"{path}: cannot read the compose file: {error}") from None
    return interpolate(document["services"], os.environ)


def service(name: str, path: Path = COMPOSE_FILE) -> dict[str, Any]:
    services = load_services(path)
    if name not in services:
        raise EnvironmentProblem(f"{path}: no service {name!r}")
    return services[name]


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings (compose allows a list or a mapping)."""
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


# The worker service the rig copies for each worker it starts.
WORKER_TEMPLATE = "worker1"
