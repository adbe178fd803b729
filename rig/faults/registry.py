"""The one table of faults: adding a fault is a module and a line here.
The `fault` setting's choices come from this table."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from rig.faults import (
    blips,
    broker_outage,
    broker_restart,
    deploy,
    kill_container,
    kill_fetching,
    kill_pool_child,
    oom,
    partition,
    pause,
    quit,
    sender_kill,
    stall,
    term,
    time_limit,
)

FAULTS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        kill_container,
        kill_pool_child,
        term,
        deploy,
        quit,
        pause,
        stall,
        time_limit,
        oom,
        partition,
        blips,
        broker_restart,
        broker_outage,
        kill_fetching,
        sender_kill,
    )
}


def part(fault: str, name: str, default: Any = None) -> Any:
    """A fault's optional part (NEEDS, Parameters, validate, task_kwargs, heal,
    describe, parks, Plan), or `default` when it has none; the fault "none" has none at all."""
    return getattr(FAULTS.get(fault), name, default)
