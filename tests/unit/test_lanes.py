"""Scenarios in parallel: the broker locks, and which history a worker's death
goes to when several runs observe at once. Pure: threads, no backend."""

from __future__ import annotations

import threading
import time

from rig.backends.base import Observers
from rig.history import History
from rig.lanes import BrokerLocks

WAIT_S = 5.0


def test_runs_share_a_broker_and_a_broker_restart_has_it_alone() -> None:
    locks = BrokerLocks()
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def shared(name: str, hold: threading.Event | None = None) -> None:
        with locks.hold("redis", alone=False):
            order.append(f"{name} in")
            if hold is not None:
                first_in.set()
                assert hold.wait(WAIT_S), "the test never released the first run"
            order.append(f"{name} out")

    def alone() -> None:
        with locks.hold("redis", alone=True):
            order.append("restart in")
            order.append("restart out")

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
    with locks.hold("rabbitmq", alone=False):  # another broker is not held up
        order.append("other broker")
    release_first.set()
    for thread in (first, restart, later):
        thread.join(WAIT_S)
        assert not thread.is_alive()
    assert order == ["a in", "other broker", "a out", "restart in", "restart out", "b in", "b out"]


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
    from rig.scenarios import load_catalog

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
