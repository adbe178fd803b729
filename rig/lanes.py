"""Scenarios in parallel (`--jobs N`): N lanes on one backend, each a runner
with crew slots and a database of its own, taking the next scenario from one
queue. Crews are already isolated (a broker corner and a control database
each); what they share is the broker, so a run that stops it (a fault's
STOPS_BROKER) or sets what the whole broker reads (a transport's node_wide:
RabbitMQ's consumer_timeout) has it alone: it waits for the runs there to
end, and the next ones wait for it."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rig.faults.registry import part as fault_part
from rig.runner import Progress, Result, Runner
from rig.scenarios import Scenario
from rig.transports import TRANSPORTS

JOIN_TICK_S = 0.5  # the main thread wakes this often, so Ctrl-C is heard


class BrokerLocks:
    """Per transport: runs share the broker; a run that stops it has it alone
    (and, once it waits, runs that come after it wait for it)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._alone: set[str] = set()

    @contextmanager
    def hold(self, transport: str, alone: bool) -> Iterator[None]:
        with self._changed:
            if alone:
                self._waiting[transport] += 1
                self._changed.wait_for(
                    lambda: not self._sharing[transport] and transport not in self._alone
                )
                self._waiting[transport] -= 1
                self._alone.add(transport)
            else:
                self._changed.wait_for(
                    lambda: transport not in self._alone and not self._waiting[transport]
                )
                self._sharing[transport] += 1
        try:
            yield
        finally:
            with self._changed:
                if alone:
                    self._alone.discard(transport)
                else:
                    self._sharing[transport] -= 1
                self._changed.notify_all()


def needs_broker_alone(scenario: Scenario) -> bool:
    """A fault that stops the broker, or a setting the whole broker reads (the
    other crews would read it too, or set it back under this one)."""
    settings = scenario.settings
    stops = bool(fault_part(settings.fault, "STOPS_BROKER", False))
    return stops or bool(TRANSPORTS[settings.transport].node_wide(settings))


def run_in_lanes(
    runner: Runner,
    scenarios: list[Scenario],
    jobs: int,
    say: Progress,
    on_result: Callable[[dict[str, Any]], None],
) -> list[Result]:
    """Run the scenarios `jobs` at a time; the results in the scenarios' order."""
    queue = deque(scenarios)
    taken = threading.Lock()
    locks = BrokerLocks()
    results: dict[str, Result] = {}
    crashes: list[BaseException] = []

    def lane(lane_runner: Runner) -> None:
        try:
            while True:
                with taken:
                    if not queue:
                        return
                    scenario = queue.popleft()
                with locks.hold(scenario.transport, alone=needs_broker_alone(scenario)):
                    result = lane_runner.run(
                        scenario.label, scenario.settings, scenario.expect, say
                    )
                with taken:
                    results[scenario.label] = result
                    on_result(result.as_json())
        except BaseException as error:  # noqa: BLE001 - raised in the main thread
            crashes.append(error)

    runners = runner.lanes(jobs)
    threads = [
        threading.Thread(target=lane, args=(r,), name=f"lane-{r.lane}", daemon=True)
        for r in runners
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(JOIN_TICK_S)
    finally:
        for lane_runner in runners:
            lane_runner.close()
    if crashes:
        raise crashes[0]
    return [results[scenario.label] for scenario in scenarios]
