"""Scenarios in parallel: the broker locks, and which history a worker's death
goes to when several runs observe at once. Pure: threads, no backend."""

from __future__ import annotations

import threading
import time

from rig.backends.base import Observers
from rig.history import History
from rig.lanes import BrokerLocks, Schedule
from rig.scenarios import Scenario, load_catalog

WAIT_S = 5.0


def test_runs_share_a_broker_and_a_broker_restart_has_it_alone() -> None:
    locks = BrokerLocks()
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def shared(name: str, hold: threading.Event | None = None) -> None:
        locks.acquire("redis", alone=False)
        order.append(f"{name} in")
        if hold is not None:
            first_in.set()
            assert hold.wait(WAIT_S), "the test never released the first run"
        order.append(f"{name} out")
        locks.release("redis", alone=False)

    def alone() -> None:
        locks.acquire("redis", alone=True)
        order.append("restart in")
        order.append("restart out")
        locks.release("redis", alone=True)

    first = threading.Thread(target=shared, args=("a", release_first))
    first.start()
    assert first_in.wait(WAIT_S)
    restart = threading.Thread(target=alone)
    restart.start()
    deadline = time.time() + WAIT_S
    while locks._waiting["redis"] == 0:  # the restart waits for the running one
        assert time.time() < deadline, "the restart never started waiting"
        time.sleep(0.01)
    later = threading.Thread(target=shared, args=("b",))  # comes after: waits for the restart
    later.start()
    locks.acquire("rabbitmq", alone=False)  # another broker is not held up
    order.append("other broker")
    locks.release("rabbitmq", alone=False)
    release_first.set()
    for thread in (first, restart, later):
        thread.join(WAIT_S)
        assert not thread.is_alive()
    assert order == ["a in", "other broker", "a out", "restart in", "restart out", "b in", "b out"]


def test_a_free_lane_runs_what_may_start_now_and_nothing_jumps_a_waiting_restart() -> None:
    catalog = load_catalog()
    restart = catalog["broker_restart_with_persistence"].on("redis")
    kill, stall = catalog["late_ack_kill_after_commit_create"], catalog["stall_past_ack_deadline"]
    schedule = Schedule([restart, kill.on("redis"), kill.on("rabbitmq"), stall.on("rabbitmq")])
    assert schedule.locks.try_acquire("redis", alone=False)  # a run shares Redis meanwhile
    assert schedule.take(ahead=True) is None, "the restart may be next: no crew is taken ahead"
    assert schedule.take() == kill.on("rabbitmq"), "Redis runs wait behind the restart"
    assert schedule.take() is None, "stall@rabbitmq needs RabbitMQ alone: a run shares it"
    schedule.done(kill.on("rabbitmq"))
    assert schedule.take() == stall.on("rabbitmq")
    schedule.locks.release("redis", alone=False)  # the Redis run is over
    assert schedule.take() == restart
    assert schedule.take(ahead=True) is None, "Redis is restarting"
    schedule.done(restart)
    assert schedule.take(ahead=True) == kill.on("redis")


def test_a_crew_is_taken_ahead_beside_a_restart_that_has_begun() -> None:
    catalog = load_catalog()
    restart = catalog["broker_restart_without_persistence"].on("redis")
    kill = catalog["late_ack_kill_after_commit_create"].on("rabbitmq")
    schedule = Schedule([restart, kill])
    assert schedule.locks.try_acquire("redis", alone=True)  # another restart of Redis runs
    assert schedule.take(ahead=True) == kill, "the next restart waits for this one anyway"


def test_a_lane_with_nothing_to_start_waits_for_the_first() -> None:
    catalog = load_catalog()
    restart = catalog["broker_restart_with_persistence"].on("redis")
    schedule = Schedule([restart])
    assert schedule.locks.try_acquire("redis", alone=False)
    taken: list[Scenario | None] = []
    waiting = threading.Thread(target=lambda: taken.append(schedule.take_or_wait()))
    waiting.start()
    deadline = time.time() + WAIT_S
    while schedule.locks._waiting["redis"] == 0:
        assert time.time() < deadline, "the lane never started waiting"
        time.sleep(0.01)
    assert not schedule.locks.try_acquire("redis", alone=False), "nothing jumps the restart"
    schedule.locks.release("redis", alone=False)
    waiting.join(WAIT_S)
    assert taken == [restart], "the restart never had Redis once the run sharing it was over"
    assert schedule.take_or_wait() is None, "all are taken"


def test_each_worker_reports_to_the_run_that_observes_it() -> None:
    observers = Observers()
    one, two = History(), History()
    observers.observe(one, ["w1-1", "w2-1"])
    observers.observe(two, ["w1-2"])
    assert observers.history_of("w1-1") is one and observers.history_of("w1-2") is two
    observers.observe(one, [])  # run one is over: its workers report to nobody
    assert observers.history_of("w1-1") is None and observers.history_of("w1-2") is two


def test_a_run_that_stops_or_reconfigures_the_broker_has_it_alone() -> None:
    """RabbitMQ reads consumer_timeout once per node as a channel opens: a crew
    starting beside a stall scenario set it back to 30 minutes, and the stall
    ran once (seen in a soak at --jobs 2)."""
    from rig.lanes import needs_broker_alone

    catalog = load_catalog()
    alone = {
        scenario.label
        for name in catalog
        for scenario in (catalog[name].on("redis"), catalog[name].on("rabbitmq"))
        if needs_broker_alone(scenario)
    }
    assert "stall_past_ack_deadline@rabbitmq" in alone
    assert "stall_past_ack_deadline" not in alone  # Redis: the workers' own options
    assert {"broker_restart_with_persistence", "broker_restart_without_persistence"} <= alone
    assert "late_ack_kill_after_commit_create" not in alone
