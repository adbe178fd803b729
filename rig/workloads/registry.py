"""The one table of workloads: adding one is a module and a line here."""

from __future__ import annotations

from types import ModuleType

from rig.workloads import keyed

WORKLOADS: dict[str, ModuleType] = {module.NAME: module for module in (keyed,)}
