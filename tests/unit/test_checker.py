"""The checker on hand-written histories: pure logic, no backend."""

from __future__ import annotations

import pytest

from rig.checker import check, crashed_workers, make_expectation
from rig.errors import BadInput
from rig.history import (
    BACKEND,
    BROKER,
    CELERY,
    EFFECTS,
    FAULT,
    LEDGER,
    PRODUCED,
    ROW,
    SENT,
    SETTLED,
    History,
)


def _ledger(
    history: History, task_id: str, attempt: int, start: float, written: bool, finished: bool
) -> None:
    history.add(
        LEDGER,
        at=start,
        task_id=task_id,
        task_name="create_record",
        business_key="k",
        hostname=f"celery@w{attempt}",
        pid=10 + attempt,
        attempt=attempt,
        redelivered=attempt > 1,
        started_at=start,
        written_at=start + 0.1 if written else None,
        finished_at=start + 0.2 if finished else None,
    )


def _kill(history: History, at: float, landed: bool = True, lag: float = 0.0) -> None:
    """A kill issued at `at`, its confirmation `lag` seconds later."""
    history.add(
        FAULT,
        at=at,
        name="container",
        target="w1",
        action="SIGKILL",
        ends_execution=True,
        task_id="t1",
        attempt=1,
        point="after_commit",
        checkpoint_at=at - 0.05,
        issued_at=at,
        confirmed_at=at + lag,
        landed=landed,
        detail="die event, exit code 137",
    )


def killed_after_commit_and_redelivered() -> History:
    history = History()
    history.add(SENT, at=100.0, task_id="t1", task="create_record", business_key="k")
    _ledger(history, "t1", 1, 100.1, written=True, finished=False)
    _kill(history, 100.4)
    _ledger(history, "t1", 2, 104.5, written=True, finished=True)
    history.add(ROW, table="users_naiverecord", business_key="k", task_id="t1")
    history.add(ROW, table="users_naiverecord", business_key="k", task_id="t1")
    history.add(SETTLED, at=105.0, settled=True, reason="drained and quiet")
    return history


def test_a_redelivered_naive_write_counts_one_duplicate_row() -> None:
    outcome = check(killed_after_commit_and_redelivered(), None, fault_expected=True)
    assert outcome.verdict == "observed"
    counts = outcome.counts
    assert (counts.sent, counts.executions, counts.completed, counts.lost) == (1, 2, 1, 0)
    assert (counts.redelivered, counts.duplicated_work, counts.duplicate_rows) == (1, 1, 1)
    assert counts.missing_rows == 0
    assert outcome.redelivery_latency_s == [4.1]


def test_expectation_decides_pass_and_fail() -> None:
    history = killed_after_commit_and_redelivered()
    passing = make_expectation(executions=2, duplicate_rows=1, redelivered=[1, 2])
    failing = make_expectation(duplicate_rows=0)
    assert check(history, passing, fault_expected=True).verdict == "pass"
    outcome = check(history, failing, fault_expected=True)
    assert outcome.verdict == "fail"
    assert outcome.reasons == ["duplicate_rows: expected 0, observed 1"]


def test_a_lost_task_is_lost_and_its_row_missing() -> None:
    history = History()
    history.add(SENT, at=1.0, task_id="t1", task="create_record", business_key="k")
    _ledger(history, "t1", 1, 1.1, written=False, finished=False)
    _kill(history, 1.2)
    history.add(SETTLED, settled=True, reason="drained and quiet")
    history.add(EFFECTS, source="SELECT business_key, count(*) FROM t GROUP BY business_key")
    counts = check(history, None, fault_expected=True).counts
    assert (counts.executions, counts.completed, counts.lost, counts.missing_rows) == (1, 0, 1, 1)


def test_without_an_effects_source_no_row_counts_as_missing() -> None:
    history = History()
    history.add(SENT, at=1.0, task_id="t1", task="create_record", business_key="k")
    _ledger(history, "t1", 1, 1.1, written=True, finished=True)
    history.add(SETTLED, settled=True, reason="drained and quiet")
    counts = check(history, None, fault_expected=False).counts
    assert (counts.completed, counts.missing_rows, counts.duplicate_rows) == (1, 0, 0)
    assert counts.redelivered == 0


def test_failed_counts_only_tasks_that_never_completed() -> None:
    history = killed_after_commit_and_redelivered()
    history.add(CELERY, type="task-failed", uuid="t1", hostname="celery@w1")
    assert check(history, None, fault_expected=True).counts.failed == 0
    lonely = History()
    lonely.add(SENT, task_id="t2", task="create_record", business_key="k2")
    _ledger(lonely, "t2", 1, 1.0, written=False, finished=False)
    lonely.add(CELERY, type="task-failed", uuid="t2", hostname="celery@w1")
    assert check(lonely, None, fault_expected=False).counts.failed == 1


def test_vacuous_run_is_unknown_not_pass() -> None:
    """Nothing sent, nothing ran, nothing killed: an expectation of zeros must not pass."""
    history = History()
    history.add(SETTLED, settled=True, reason="drained and quiet")
    expectation = make_expectation(duplicate_rows=0, lost=0)
    outcome = check(history, expectation, fault_expected=True)
    assert outcome.verdict == "unknown"
    assert any("no fault was injected" in reason for reason in outcome.reasons)
    assert any("vacuous" in reason for reason in outcome.reasons)


def test_fault_outside_its_window_is_unknown() -> None:
    history = killed_after_commit_and_redelivered()
    _kill(history, 120.0, landed=False)
    outcome = check(history, make_expectation(duplicate_rows=1), fault_expected=True)
    assert outcome.verdict == "unknown"
    assert "did not land" in outcome.reasons[0]


def test_run_that_did_not_settle_is_unknown() -> None:
    history = killed_after_commit_and_redelivered()
    history.add(SETTLED, at=200.0, settled=False, reason="1 message(s) still queued")
    outcome = check(history, make_expectation(duplicate_rows=1), fault_expected=True)
    assert outcome.verdict == "unknown"
    assert "1 message(s) still queued" in outcome.reasons[0]


@pytest.mark.parametrize(
    "bad",
    [{"duplicates": 1}, {"lost": -1}, {"lost": "one"}, {"lost": [3, 1]}, {"lost": True}],
)
def test_bad_expectations_are_errors(bad: dict) -> None:
    with pytest.raises(BadInput):
        make_expectation(**bad)


def test_history_round_trips_through_jsonl(tmp_path) -> None:
    history = killed_after_commit_and_redelivered()
    path = tmp_path / "history.jsonl"
    history.write_jsonl(path)
    again = History.read_jsonl(path)
    assert [e.kind for e in again] == [e.kind for e in history]
    assert check(again, None, True).counts == check(history, None, True).counts


def test_a_task_that_never_ran_is_lost_from_the_queue_not_mid_run() -> None:
    """Three tasks: one finished, one died mid-run, one never started (a broker
    restart without persistence forgot it)."""
    history = History()
    for task_id in ("done", "died", "forgotten"):
        history.add(SENT, at=100.0, task_id=task_id, task="create_record", business_key=task_id)
    _ledger(history, "done", 1, 100.1, written=True, finished=True)
    _ledger(history, "died", 1, 100.1, written=False, finished=False)
    history.add(SETTLED, settled=True, reason="drained and quiet")
    counts = check(history, None, fault_expected=False).counts
    assert (counts.completed, counts.lost, counts.never_ran) == (1, 2, 1)


def test_a_crash_is_an_error_verdict_with_its_message() -> None:
    from rig.history import ERROR

    history = History()
    history.add(ERROR, message="RuntimeError: boom")
    outcome = check(history, make_expectation(lost=0), fault_expected=True)
    assert (outcome.verdict, outcome.reasons) == ("error", ["RuntimeError: boom"])


def test_an_execution_its_worker_reported_failed_is_over() -> None:
    """The OOM killer took the pool child: no fault record, but its worker said so."""
    from rig.checker import reported_failed

    history = History()
    _ledger(history, "t1", 1, 100.0, written=False, finished=False)
    (row,) = [e.data for e in history.events(LEDGER)]
    assert not reported_failed(row, history)
    history.add(CELERY, type="task-failed", uuid="t1", hostname="celery@w2", timestamp=100.5)
    assert not reported_failed(row, history), "another worker's failure says nothing of this one"
    history.add(CELERY, type="task-failed", uuid="t1", hostname="celery@w1", timestamp=100.5)
    assert reported_failed(row, history)


def test_expected_row_counts_without_any_effects_read_are_unknown() -> None:
    history = History()
    history.add(SENT, at=1.0, task_id="t1", task="t", business_key="k")
    _ledger(history, "t1", 1, 1.1, written=True, finished=True)
    history.add(SETTLED, settled=True, reason="drained and quiet")
    outcome = check(history, {"duplicate_rows": 0}, fault_expected=False)
    assert outcome.verdict == "unknown"
    assert "no effects were read" in " ".join(outcome.reasons)


def test_redelivery_latency_counts_from_the_fault_issued_not_its_late_confirmation() -> None:
    """A RabbitMQ requeue can start the next execution before the rig sees the exit."""
    history = History()
    history.add(SENT, at=100.0, task_id="t1", task="create_record", business_key="k")
    _ledger(history, "t1", 1, 100.1, written=True, finished=False)
    _kill(history, 100.4, lag=0.2)
    _ledger(history, "t1", 2, 100.5, written=True, finished=True)
    history.add(SETTLED, at=105.0, settled=True, reason="drained and quiet")
    assert check(history, None, fault_expected=True).redelivery_latency_s == [0.1]


def stranded_by_crashing_workers(exited: tuple[str, ...] = ("w1-1", "w2-1")) -> History:
    """A countdown past RabbitMQ's consumer_timeout: each worker that reserved
    the message exited on its own; nothing ran, the message stayed queued."""
    history = History()
    history.add(SENT, at=100.0, task_id="t1", task="create_record", business_key="k")
    for offset, worker in enumerate(exited):
        history.add(BACKEND, at=102.3 + 2 * offset, action="exit", worker=worker, exit_code=1)
    history.add(SETTLED, at=107.0, settled=True, reason="every worker exited")
    history.add(BACKEND, at=108.0, action="exit", worker="w3-1", exit_code=0)  # after: removal
    history.add(BROKER, dead_lettered=0, stranded=1)
    history.add(EFFECTS, source="SELECT ...")
    return history


def test_workers_that_exit_on_their_own_explain_a_run_where_nothing_ran() -> None:
    expected = make_expectation(executions=0, stranded=1, workers_crashed=2, never_ran=1)
    outcome = check(stranded_by_crashing_workers(), expected, fault_expected=False)
    assert outcome.verdict == "pass", outcome.reasons
    assert (outcome.counts.lost, outcome.counts.missing_rows) == (1, 1)


def test_messages_a_live_worker_stopped_taking_are_unconsumed_and_lost() -> None:
    """Blips, then a worker alive and idle beside two queued messages (celery#8030):
    the run settles on it; the two count as unconsumed and lost, not as a hang."""
    history = History()
    for n in (1, 2, 3):
        history.add(SENT, at=100.0, task_id=f"t{n}", task="create_record", business_key=f"k{n}")
    _ledger(history, "t1", 1, 100.2, written=True, finished=True)
    history.add(
        SETTLED,
        at=140.0,
        settled=True,
        reason="the workers stopped consuming",
        stopped_consuming=True,
    )
    history.add(BROKER, dead_lettered=0, stranded=0, unconsumed=2)
    history.add(EFFECTS, source="SELECT ...")
    history.add(ROW, business_key="k1", count=1)
    outcome = check(history, make_expectation(unconsumed=0), fault_expected=False)
    assert outcome.verdict == "fail"
    assert (outcome.counts.unconsumed, outcome.counts.lost) == (2, 2)
    assert outcome.reasons == ["unconsumed: expected 0, observed 2"]


def test_a_countdown_task_that_started_well_past_its_due_time_ran_late() -> None:
    """Held by a worker killed outright, it waited out the visibility timeout."""
    history = History()
    history.add(SENT, at=100.0, task_id="t1", task="create_record", business_key="k", due_at=106.0)
    history.add(SENT, at=100.0, task_id="t2", task="create_record", business_key="k2", due_at=106.0)
    _ledger(history, "t1", 1, 112.5, written=True, finished=True)  # 6.5 s past due
    history.add(LEDGER, **{**history.events(LEDGER)[0].data, "task_id": "t2", "started_at": 107.0})
    assert check(history, None, fault_expected=False).counts.ran_late == 1


def test_nothing_ran_and_no_worker_crashed_is_vacuous() -> None:
    outcome = check(stranded_by_crashing_workers(exited=()), None, fault_expected=False)
    assert outcome.verdict == "unknown"
    assert any("vacuous" in reason for reason in outcome.reasons)


def test_a_worker_a_fault_aimed_at_did_not_crash_on_its_own() -> None:
    history = killed_after_commit_and_redelivered()
    history.add(BACKEND, at=100.45, action="die", worker="w1", exit_code=137)
    assert crashed_workers(history) == set()
    history.add(BACKEND, at=104.0, action="exit", worker="w2", exit_code=1)
    assert crashed_workers(history) == {"w2"}
    history.add(BACKEND, at=104.2, action="start", worker="w2")  # restarted: up again
    assert crashed_workers(history) == set()


def produced(published: bool) -> History:
    """A producer's order (task t1): its publish went through, or raised."""
    history = History()
    history.add(SENT, at=100.0, task_id="t1", task="fulfil_order", business_key="k")
    answer = (
        {"published": ["t1"], "raised": ""}
        if published
        else {
            "published": [],
            "raised": "OperationalError: Error 111 connecting to 127.0.0.1:6379.",
        }
    )
    history.add(PRODUCED, at=100.5, task_id="t1", **answer)
    history.add(EFFECTS, source="built-in")
    history.add(FAULT, at=100.2, name="broker-outage", target="redis", landed=True, issued_at=100.2)
    history.add(SETTLED, at=110.0, settled=True, reason="drained and quiet")
    return history


def test_a_producer_that_published_nothing_left_its_task_never_sent_and_lost() -> None:
    counts = check(produced(published=False), None, fault_expected=True).counts
    assert (counts.never_sent, counts.lost, counts.never_ran, counts.missing_rows) == (1, 1, 1, 1)


def test_a_producer_whose_publish_went_through_sent_its_task() -> None:
    assert check(produced(published=True), None, fault_expected=True).counts.never_sent == 0


def _charged_twice(second_call: dict[str, object], emails: int = 0) -> History:
    """Killed after a charge (and `emails` receipts), run again: both executions called out."""
    history = History()
    history.add(SENT, at=1.0, task_id="t1", task="charge", business_key="k")
    call = {"method": "POST", "host": "pay.example", "path": "/v1/charges", "key": ""}
    email = {"to": ["k@example.invalid"], "subject": "Your receipt"}
    for attempt, made in ((1, call | {"replayed": False}), (2, second_call)):
        history.add(
            LEDGER,
            task_id="t1",
            attempt=attempt,
            hostname=f"celery@w{attempt}",
            started_at=float(attempt),
            written_at=None,
            finished_at=2.5 if attempt == 2 else None,
            calls=[made],
            emails=[email] * emails,
        )
    _kill(history, 1.5)
    history.add(SETTLED, settled=True, reason="drained and quiet")
    return history


def test_a_charge_made_again_is_a_duplicate_external_effect() -> None:
    again = {"method": "POST", "host": "pay.example", "path": "/v1/charges", "replayed": False}
    counts = check(_charged_twice(again), None, fault_expected=True).counts
    assert (counts.external_calls, counts.duplicate_external_effects) == (2, 1)


def test_a_charge_the_sink_replayed_from_its_key_has_no_second_effect() -> None:
    replayed = {"method": "POST", "host": "pay.example", "path": "/v1/charges", "replayed": True}
    counts = check(_charged_twice(replayed), None, fault_expected=True).counts
    assert (counts.external_calls, counts.duplicate_external_effects) == (2, 0)


def test_another_call_is_not_a_duplicate_but_a_second_receipt_is() -> None:
    refund = {"method": "POST", "host": "pay.example", "path": "/v1/refunds", "replayed": False}
    counts = check(_charged_twice(refund, emails=2), None, fault_expected=True).counts
    assert counts.duplicate_external_effects == 0
    # Each execution sent two receipts: its first and its second are each repeated once.
    assert (counts.emails, counts.duplicate_emails) == (4, 2)


def test_a_refused_connection_is_the_runs_error_naming_it() -> None:
    history = _charged_twice({"method": "GET", "host": "h", "path": "/", "replayed": False})
    refused = [{"address": "10.0.0.9:6379"}]
    history.add(LEDGER, task_id="t1", attempt=3, hostname="celery@w1", started_at=3.0,
                written_at=None, finished_at=None, refused=refused)  # fmt: skip
    outcome = check(history, None, fault_expected=True)
    assert outcome.verdict == "error"
    assert outcome.reasons == [
        "task t1 tried to connect to 10.0.0.9:6379, which is not one of the rig's services: "
        "refused (the rig's sink answers outbound HTTP made through urllib3, as requests "
        "does, or httpx)"
    ]
