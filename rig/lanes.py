"""Scenarios in parallel (`--jobs N`): N lanes on one backend, each a runner
with crew slots and a database of its own, taking the next scenario from one
queue. Once its run's faults have landed, a lane takes its next scenario, so
that crew starts while the run settles (as the serial runner does). Crews
are already isolated (a broker corner and a control database each). A run
that stops the broker (a fault's STOPS_BROKER) or sets what the whole broker
reads (a transport's node_wide: RabbitMQ's consumer_timeout) needs a broker
alone: it runs on its transport's other node (Settings.broker_node), which
such runs take in turn, while the runs sharing the first go on beside it."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from rig.runner import Progress, Result, Runner
from rig.scenarios import Scenario
from rig.settings import Settings
from rig.settle import deadline_s

JOIN_TICK_S = 0.5  # the main thread wakes this often, so Ctrl-C is heard


class AloneNodes:
    """Per transport, the broker node runs that need one alone take in turn;
    the node the others share needs no lock."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: set[str] = set()  # transports whose alone node a run has

    def acquire(self, transport: str) -> None:
        with self._changed:
            self._changed.wait_for(lambda: transport not in self._held)
            self._held.add(transport)

    def try_acquire(self, transport: str) -> bool:
        """Take the node now if it is free, never waiting (a lane choosing what
        to run next, perhaps while it holds the node for its current run)."""
        with self._changed:
            if transport in self._held:
                return False
            self._held.add(transport)
            return True

    def release(self, transport: str) -> None:
        with self._changed:
            self._held.discard(transport)
            self._changed.notify_all()


def needs_broker_alone(scenario: Scenario) -> bool:
    return bool(scenario.settings.needs_broker_alone())


class Schedule:
    """The scenarios not yet taken, and the alone nodes' locks: which a free lane runs next."""

    def __init__(self, scenarios: list[Scenario]) -> None:
        self.queue = deque(scenarios)
        self.alone = AloneNodes()
        self._taken = threading.Lock()

    def take(self) -> Scenario | None:
        """The first scenario that may start now: one that shares its broker, or
        one that needs it alone while its transport's alone node is free (taken
        with it). A crew taken ahead of its run never meets a broker restart: a
        shared node never restarts, and the alone node is held until its run ends."""
        with self._taken:
            for index, scenario in enumerate(self.queue):
                if not needs_broker_alone(scenario) or self.alone.try_acquire(scenario.transport):
                    del self.queue[index]
                    return scenario
        return None

    def take_or_wait(self) -> Scenario | None:
        """The next scenario to run, waiting for its alone node if none may start
        now; None once all are taken."""
        scenario = self.take()
        if scenario is not None:
            return scenario
        with self._taken:
            if not self.queue:
                return None
            scenario = self.queue.popleft()  # needs a node alone: every one left does
        self.alone.acquire(scenario.transport)
        return scenario

    def done(self, scenario: Scenario) -> None:
        """Its run is over (or will never start): its alone node is let go."""
        if needs_broker_alone(scenario):
            self.alone.release(scenario.transport)


def lane_order(scenarios: list[Scenario]) -> list[Scenario]:
    """Those that need their broker alone first, one per transport at a time,
    with shared runs beside them: left to the end, they would run one lane at a
    time. Within each, those that may take longest (their settle bound) first,
    so that none is left to run on its own at the end."""

    def order(scenario: Scenario) -> tuple[bool, float]:
        return not needs_broker_alone(scenario), -deadline_s(scenario.settings)

    return sorted(scenarios, key=order)


def run_in_lanes(
    runner: Runner,
    scenarios: list[Scenario],
    jobs: int,
    say: Progress,
    on_result: Callable[[dict[str, Any]], None],
) -> list[Result]:
    """Run the scenarios `jobs` at a time (in lane_order); the results in the
    scenarios' order."""
    schedule = Schedule(lane_order(scenarios))
    recording = threading.Lock()
    results: dict[str, Result] = {}
    crashes: list[BaseException] = []

    def lane(lane_runner: Runner) -> None:
        reserved: Scenario | None = None  # the next one, its share of the broker held

        def reserve_next() -> Settings | None:
            """The next scenario, if one may start now: its crew starts while
            this run settles, as in the serial runner."""
            nonlocal reserved
            reserved = schedule.take()
            return reserved.settings if reserved is not None else None

        try:
            while True:
                scenario = reserved if reserved is not None else schedule.take_or_wait()
                reserved = None
                if scenario is None:
                    return
                try:
                    result = lane_runner.run(
                        scenario.label, scenario.settings, scenario.expect, say, reserve_next
                    )
                finally:
                    schedule.done(scenario)
                with recording:
                    results[scenario.label] = result
                    on_result(result.as_json())
        except BaseException as error:  # noqa: BLE001 - raised in the main thread
            if reserved is not None:
                schedule.done(reserved)
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
