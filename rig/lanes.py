"""Scenarios in parallel (`--jobs N`): N lanes on one backend, each a runner
with crew slots and a database of its own, taking the next scenario from one
queue. Once its run's faults have landed, a lane takes its next scenario, so
that crew starts while the run settles (as the serial runner does). Crews
are already isolated (a broker corner and a control database each); what
they share is the broker, so a run that stops it (a fault's STOPS_BROKER) or
sets what the whole broker reads (a transport's node_wide: RabbitMQ's
consumer_timeout) has it alone: it waits for the runs there to end, and the
next ones wait for it. Such a run is never taken ahead, and a crew taken
ahead holds its broker's share from then on."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from rig.faults.registry import part as fault_part
from rig.runner import Progress, Result, Runner
from rig.scenarios import Scenario
from rig.settings import Settings
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

    def acquire(self, transport: str, alone: bool) -> None:
        with self._changed:
            if alone:
                self._waiting[transport] += 1
                self._changed.wait_for(lambda: self._may_have_alone(transport))
                self._waiting[transport] -= 1
                self._alone.add(transport)
            else:
                self._changed.wait_for(lambda: self._may_share(transport))
                self._sharing[transport] += 1

    def try_acquire(self, transport: str, alone: bool) -> bool:
        """Take the broker now if it may be, never waiting (a lane choosing
        what to run next, perhaps while it holds the broker for its current run)."""
        with self._changed:
            if alone and self._may_have_alone(transport):
                self._alone.add(transport)
                return True
            if not alone and self._may_share(transport):
                self._sharing[transport] += 1
                return True
            return False

    def release(self, transport: str, alone: bool) -> None:
        with self._changed:
            if alone:
                self._alone.discard(transport)
            else:
                self._sharing[transport] -= 1
            self._changed.notify_all()

    def held_alone(self, transport: str) -> bool:
        with self._changed:
            return transport in self._alone

    def _may_share(self, transport: str) -> bool:
        return transport not in self._alone and not self._waiting[transport]

    def _may_have_alone(self, transport: str) -> bool:
        return not self._sharing[transport] and transport not in self._alone


def needs_broker_alone(scenario: Scenario) -> bool:
    """A fault that stops the broker, or a setting the whole broker reads (the
    other crews would read it too, or set it back under this one)."""
    settings = scenario.settings
    stops = bool(fault_part(settings.fault, "STOPS_BROKER", False))
    return stops or bool(TRANSPORTS[settings.transport].node_wide(settings))


class Schedule:
    """The scenarios not yet taken, and the brokers' locks: which a free lane runs next."""

    def __init__(self, scenarios: list[Scenario]) -> None:
        self.queue = deque(scenarios)
        self.locks = BrokerLocks()
        self._taken = threading.Lock()

    def take(self, ahead: bool = False) -> Scenario | None:
        """The first scenario that may start now, its broker taken; one that
        needs its broker alone holds back the later ones on that broker, so it
        is not starved. `ahead`: only one that shares its broker (a crew taken
        ahead would go through a broker restart before its run began), and none
        while one that needs a broker alone could be the lane's next."""
        held_back: set[str] = set()
        with self._taken:
            for index, scenario in enumerate(self.queue):
                alone = needs_broker_alone(scenario)
                if alone and ahead and not self.locks.held_alone(scenario.transport):
                    return None  # it may well be the lane's next: a crew ahead would delay it
                if scenario.transport in held_back:
                    continue
                if self.locks.try_acquire(scenario.transport, alone):  # never one held alone
                    del self.queue[index]
                    return scenario
                if alone:
                    held_back.add(scenario.transport)
        return None

    def take_or_wait(self) -> Scenario | None:
        """The next scenario to run, waiting for its broker if none may start now;
        None once all are taken."""
        scenario = self.take()
        if scenario is not None:
            return scenario
        with self._taken:
            if not self.queue:
                return None
            scenario = self.queue.popleft()
        self.locks.acquire(scenario.transport, needs_broker_alone(scenario))
        return scenario

    def done(self, scenario: Scenario) -> None:
        """Its run is over (or will never start): its broker is let go."""
        self.locks.release(scenario.transport, needs_broker_alone(scenario))


def run_in_lanes(
    runner: Runner,
    scenarios: list[Scenario],
    jobs: int,
    say: Progress,
    on_result: Callable[[dict[str, Any]], None],
) -> list[Result]:
    """Run the scenarios `jobs` at a time; the results in the scenarios' order.
    Those that need their broker alone go first, one per broker at a time, with
    shared runs beside them: left to the end, they would run one lane at a time."""
    schedule = Schedule(sorted(scenarios, key=lambda scenario: not needs_broker_alone(scenario)))
    recording = threading.Lock()
    results: dict[str, Result] = {}
    crashes: list[BaseException] = []

    def lane(lane_runner: Runner) -> None:
        reserved: Scenario | None = None  # the next one, its share of the broker held

        def reserve_next() -> Settings | None:
            """The next scenario, if one may share its broker now: its crew
            starts while this run settles, as in the serial runner."""
            nonlocal reserved
            reserved = schedule.take(ahead=True)
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
