"""Prefetch fairness: the metrics on hand-written spans (pure), and the seed's
claims on real workers (marker `fairness`)."""

from __future__ import annotations

import pytest

from rig import fairness, schema
from rig.errors import BadInput
from rig.prefetch import SentTask, TaskSpan, max_held, measure, spans_from_events, throughput

ALL = {"w1": {"celery"}, "w2": {"celery"}}


def span(task_id: str, worker: str, received: float, started: float, finished: float) -> TaskSpan:
    return TaskSpan(task_id, "long", worker, "celery", 0.0, received, started, finished)


# Prefetch on RabbitMQ is basic.qos per consumer; worker_disable_prefetch is Redis-only.


def test_a_task_held_behind_another_while_a_worker_idles_is_an_unfair_wait() -> None:
    spans = [
        span("a", "w1", 0.0, 0.0, 3.0),
        span("b", "w1", 0.0, 3.0, 4.0),  # reserved behind a, 0..3
        span("c", "w2", 0.0, 0.0, 1.0),  # w2 idles from 1 to 4
    ]
    metrics = measure(spans, ALL, sent=3)
    assert metrics.held_behind == 1
    assert metrics.held_behind_s == pytest.approx(3.0)
    assert metrics.unfair_wait_s == pytest.approx(2.0)  # w2 idle 1..3 while b waited
    assert metrics.max_held_by_one_worker == 2
    assert metrics.makespan_s == pytest.approx(4.0)
    assert metrics.utilisation == {"w1": pytest.approx(1.0), "w2": pytest.approx(0.25)}


def test_waiting_while_every_other_worker_is_busy_is_not_unfair() -> None:
    spans = [
        span("a", "w1", 0.0, 0.0, 2.0),
        span("b", "w1", 0.0, 2.0, 4.0),
        span("c", "w2", 0.0, 0.0, 4.0),
    ]
    metrics = measure(spans, ALL, sent=3)
    assert metrics.held_behind == 1
    assert metrics.unfair_wait_s == 0.0


def test_hand_off_to_the_pool_is_not_held_behind_anything() -> None:
    # Late ack: received only after the previous task finished; a few ms to start.
    spans = [span("a", "w1", 0.0, 0.001, 2.0), span("b", "w1", 2.001, 2.004, 3.0)]
    metrics = measure(spans, ALL, sent=2)
    assert metrics.held_behind == 0
    assert metrics.unfair_wait_s == 0.0
    assert max_held(spans) == 1


def test_an_idle_worker_of_another_queue_does_not_make_a_wait_unfair() -> None:
    consumers = {"w1": {"long"}, "w2": {"celery"}}
    spans = [
        TaskSpan("a", "long", "w1", "long", 0.0, 0.0, 0.0, 3.0),
        TaskSpan("b", "long", "w1", "long", 0.0, 0.0, 3.0, 6.0),
        TaskSpan("c", "short", "w2", "celery", 0.0, 0.0, 0.0, 0.5),
    ]
    assert measure(spans, consumers, sent=3).unfair_wait_s == 0.0


def test_spans_pair_events_and_unfinished_tasks_count_as_incomplete() -> None:
    sent = [SentTask("a", "long", "celery", 10.0), SentTask("b", "long", "celery", 10.0)]
    events = [
        {"type": "task-received", "uuid": "a", "hostname": "w1", "timestamp": 10.1},
        {"type": "task-started", "uuid": "a", "hostname": "w1", "timestamp": 10.2},
        {"type": "task-succeeded", "uuid": "a", "hostname": "w1", "timestamp": 11.2},
        {"type": "task-received", "uuid": "b", "hostname": "w2", "timestamp": 10.1},
    ]
    spans = spans_from_events(sent, events)
    assert [(s.task_id, s.worker, s.reserved_s) for s in spans] == [("a", "w1", pytest.approx(0.1))]
    assert measure(spans, ALL, sent=2).incomplete == 1
    assert throughput(spans) == pytest.approx(1 / 1.2)


def test_an_empty_run_measures_nothing_and_says_so() -> None:
    metrics = measure([], ALL, sent=4)
    assert metrics.incomplete == 4 and metrics.makespan_s == 0.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": 1}, "workers=1: must be at least 2"),
        ({"long_tasks": 0}, "long_tasks=0"),
        ({"short_seconds": 5.0, "long_seconds": 3.0}, "must be below"),
        ({"burst": "many"}, "burst='many'"),
    ],
)
def test_a_bad_workload_is_an_error(values: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        schema.make(fairness.Workload, values)


def test_an_unknown_configuration_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(BadInput, match="known: early-ack, late-ack"):
        fairness.select_configs(["early-ack", "eager-ack"])


# --- the seed's claims, on real workers -----------------------------------
def test_utilisation_counts_overlapping_runs_once() -> None:
    spans = [span("a", "w1", 0.0, 0.0, 2.0), span("b", "w1", 0.0, 1.0, 4.0)]
    assert measure(spans, ALL, sent=2).utilisation["w1"] == pytest.approx(1.0)


def test_a_span_belongs_to_the_worker_that_started_the_task() -> None:
    # Received by w1, restored by Redis, fetched and run by w2.
    sent = [SentTask("a", "short", "celery", 0.0)]
    events = [
        {"type": "task-received", "uuid": "a", "hostname": "w1", "timestamp": 0.1},
        {"type": "task-received", "uuid": "a", "hostname": "w2", "timestamp": 5.0},
        {"type": "task-started", "uuid": "a", "hostname": "w2", "timestamp": 5.1},
        {"type": "task-succeeded", "uuid": "a", "hostname": "w2", "timestamp": 5.3},
    ]
    (only,) = spans_from_events(sent, events)
    assert (only.worker, only.received_at, only.started_at) == ("w2", 5.0, 5.1)
