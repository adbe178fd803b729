"""The engine's events reach the history of the worker a slot container holds
now: an oom kill in a slot is the kernel's, and only the engine reports it."""

from __future__ import annotations

from typing import Any, cast

from rig.backends.docker_events import WorkerEvents
from rig.history import BACKEND, History


def _event(action: str, container: str) -> dict[str, Any]:
    return {
        "Action": action,
        "timeNano": 1_700_000_000_000_000_000,
        "Actor": {"Attributes": {"name": container}},
    }


def test_a_slots_event_goes_to_the_worker_it_holds_and_no_one_else() -> None:
    watch = WorkerEvents(client=cast(Any, None), run_label="com.celery-rig.run=x")
    history = History()
    watch.observers.observe(history, ["w1-1"])
    holds = {"slot-2": "w1-1", "slot-3": "w9-1"}  # w9-1: a worker no history observes

    for container in ("run-x-slot-2", "run-x-slot-3", "run-x-slot-4"):
        watch._on_event(_event("oom", container), "run-x-", lambda slot: holds.get(slot, ""))

    recorded = history.events(BACKEND)
    assert [(e.data["action"], e.data["worker"]) for e in recorded] == [("oom", "w1-1")]
    assert recorded[0].at == 1_700_000_000.0
