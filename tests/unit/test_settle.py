"""When a run counts as settled: pure parts, on hand-written histories."""

from __future__ import annotations

from rig.history import BACKEND, CELERY, SENT, History
from rig.settle import due_in, started_not_recorded

T0 = 1_700_000_000.0


def _started(history: History, task_id: str, worker: str, at: float) -> None:
    history.add(
        CELERY, at=T0 + at, type="task-started", uuid=task_id,
        hostname=f"celery@{worker}", timestamp=T0 + at,
    )  # fmt: skip


def test_a_started_task_not_yet_in_the_ledger_is_waited_for() -> None:
    history = History()
    _started(history, "t1", "w1", 0.1)
    _started(history, "t2", "w1", 0.2)
    ledger = [{"task_id": "t1", "hostname": "celery@w1"}]
    assert started_not_recorded(ledger, history) == 1


def test_a_started_task_whose_worker_died_since_is_not_waited_for() -> None:
    """Killed between task-started and the agent's first write: no row will come
    (before, the settle wait ran to its deadline and the run ended unknown)."""
    history = History()
    _started(history, "t1", "w1", 0.1)
    history.add(BACKEND, at=T0 + 0.5, action="die", worker="w1", exit_code=137)
    _started(history, "t1", "w2", 3.0)  # redelivered to a live worker, not recorded yet
    assert started_not_recorded([], history) == 1
    assert started_not_recorded([{"task_id": "t1", "hostname": "celery@w2"}], history) == 0


def test_a_worker_that_died_before_the_task_started_does_not_excuse_it() -> None:
    history = History()
    history.add(BACKEND, at=T0 + 0.5, action="die", worker="w1", exit_code=137)
    _started(history, "t1", "w1", 2.0)  # the worker started again, then took the task
    assert started_not_recorded([], history) == 1


def test_a_draining_queue_is_said_once_per_kind_not_once_per_message() -> None:
    """A log (CI, a file) got a line per message left; now a line when what the
    run waits for changes, and the count again only every few seconds."""
    from rig.settle import wait_quiet

    left = iter([*(f"{n} message(s) still queued or unacknowledged" for n in range(12, 0, -1))])
    said: list[str] = []
    reason = wait_quiet(lambda: next(left, ""), timeout_s=10, progress=said.append)
    assert reason == ""
    assert said == ["waiting: 12 message(s) still queued or unacknowledged", "waiting: settling"]


def test_a_countdown_not_yet_due_is_waited_for_though_no_queue_shows_it() -> None:
    history = History()
    history.add(SENT, at=T0, task_id="t1", task="create_record", business_key="k")
    history.add(SENT, at=T0 + 1, task_id="t2", task="create_record", business_key="k2")
    assert due_in(history, countdown_s=10, now=T0 + 4) == 7  # the last one sent is due at 11
    assert due_in(history, countdown_s=10, now=T0 + 12) == 0
    assert due_in(history, countdown_s=0, now=T0) == 0  # no countdown: nothing to wait for


def test_messages_queued_while_nothing_runs_for_long_mean_the_workers_stopped() -> None:
    """celery#8030: a worker alive after a reconnection that takes nothing. The
    wait ends on it rather than at its deadline, and a message taken in time
    starts the clock again."""
    from rig.settle import STOPPED_CONSUMING_S, IdleQueue

    idle = IdleQueue()
    assert idle.look(2, T0) == 0
    assert idle.look(2, T0 + STOPPED_CONSUMING_S - 1) == STOPPED_CONSUMING_S - 1
    assert not idle.stopped_consuming
    assert idle.look(0, T0 + STOPPED_CONSUMING_S) == 0  # taken: the clock starts again
    idle.look(1, T0 + 40)
    assert not idle.stopped_consuming
    idle.look(1, T0 + 40 + STOPPED_CONSUMING_S)
    assert idle.stopped_consuming
