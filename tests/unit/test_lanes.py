"""Scenarios in parallel: the alone nodes' locks, and which history a worker's death
goes to when several runs observe at once. Pure: threads, no backend."""

from __future__ import annotations

import threading

from rig.backends.base import ALONE_NODE, SHARED_NODE, Observers
from rig.history import History
from rig.lanes import AloneNodes, Schedule, lane_order
from rig.scenarios import Scenario, load_catalog

WAIT_S = 5.0


def test_runs_needing_a_broker_alone_take_its_alone_node_in_turn() -> None:
    nodes = AloneNodes()
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()
    second_waiting = threading.Event()

    def first() -> None:
        nodes.acquire("redis")
        order.append("first in")
        first_in.set()
        assert release_first.wait(WAIT_S), "the test never released the first run"
        order.append("first out")
        nodes.release("redis")

    def second() -> None:
        second_waiting.set()
        nodes.acquire("redis")
        order.append("second in")
        nodes.release("redis")

    one = threading.Thread(target=first)
    one.start()
    assert first_in.wait(WAIT_S)
    two = threading.Thread(target=second)
    two.start()
    assert second_waiting.wait(WAIT_S)
    assert nodes.try_acquire("rabbitmq"), "another transport's alone node is not held up"
    assert not nodes.try_acquire("redis"), "Redis' alone node is held"
    release_first.set()
    for thread in (one, two):
        thread.join(WAIT_S)
        assert not thread.is_alive()
    assert order == ["first in", "first out", "second in"]


def test_a_free_lane_runs_what_may_start_now_beside_a_restart() -> None:
    catalog = load_catalog()
    restart = catalog["broker_restart_with_persistence"].on("redis")
    outage = catalog["retry_publish_broker_away"].on("redis")
    kill, stall = catalog["late_ack_kill_after_commit_create"], catalog["stall_past_ack_deadline"]
    schedule = Schedule([restart, outage, kill.on("redis"), stall.on("rabbitmq")])
    assert schedule.take() == restart
    assert schedule.take() == kill.on("redis"), "shared runs go on beside the restart"
    assert schedule.take() == stall.on("rabbitmq"), "RabbitMQ's alone node is free"
    assert schedule.take() is None, "the outage waits for Redis' alone node"
    schedule.done(kill.on("redis"))  # a shared run's end frees nothing
    assert schedule.take() is None
    schedule.done(restart)
    assert schedule.take() == outage


def test_a_lane_with_nothing_to_start_waits_for_the_first() -> None:
    catalog = load_catalog()
    restart = catalog["broker_restart_with_persistence"].on("redis")
    schedule = Schedule([restart])
    assert schedule.alone.try_acquire("redis")  # another restart of Redis runs
    taken: list[Scenario | None] = []
    started = threading.Event()

    def lane() -> None:
        started.set()
        taken.append(schedule.take_or_wait())

    waiting = threading.Thread(target=lane)
    waiting.start()
    assert started.wait(WAIT_S)
    waiting.join(0.2)
    assert waiting.is_alive() and not taken, "the restart jumped the one running"
    schedule.alone.release("redis")
    waiting.join(WAIT_S)
    assert taken == [restart], "the restart never had Redis' alone node once it was free"
    assert schedule.take_or_wait() is None, "all are taken"


def test_each_worker_reports_to_the_run_that_observes_it() -> None:
    observers = Observers()
    one, two = History(), History()
    observers.observe(one, ["w1-1", "w2-1"])
    observers.observe(two, ["w1-2"])
    assert observers.history_of("w1-1") is one and observers.history_of("w1-2") is two
    observers.observe(one, [])  # run one is over: its workers report to nobody
    assert observers.history_of("w1-1") is None and observers.history_of("w1-2") is two


def test_a_run_that_stops_or_reconfigures_the_broker_has_a_node_alone() -> None:
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
    stall = catalog["stall_past_ack_deadline"]
    assert stall.on("rabbitmq").settings.broker_node == ALONE_NODE
    assert stall.on("redis").settings.broker_node == SHARED_NODE


def test_lanes_take_alone_runs_first_then_the_longest() -> None:
    """The alone runs of a transport go one at a time: started last, they would
    be the catalog's tail. A run of 60 tasks left to the end ran on its own for
    20 s of a 370 s catalog."""
    catalog = load_catalog()
    kill = catalog["late_ack_kill_after_commit_create"].on("redis")
    recycling = catalog["worker_recycling_max_tasks_per_child"].on("redis")
    restart = catalog["broker_restart_without_persistence"].on("rabbitmq")
    order = lane_order([kill, recycling, restart])
    assert order == [restart, recycling, kill], [s.label for s in order]
