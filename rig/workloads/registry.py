"""The one table of workloads: adding one is a module and a line here."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from rig.workloads import beat, chain, chord, countdown, group, keyed, producer

WORKLOADS: dict[str, ModuleType] = {
    module.NAME: module for module in (keyed, countdown, producer, chain, group, chord, beat)
}


def part(workload: str, name: str, default: Any = None) -> Any:
    """A workload's optional part (Parameters, validate, POINTS, describe), or `default`."""
    return getattr(WORKLOADS.get(workload), name, default)
