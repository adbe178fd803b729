"""Beat's slots and the count of runs per slot, on hand-written sends: pure logic."""

from __future__ import annotations

import pytest

from rig.checker import check
from rig.errors import BadInput
from rig.history import LEDGER, SENT, SETTLED, History
from rig.settings import make_settings
from rig.workloads.beat import slot_numbers


def send(beat: str, slot: str, task_id: str) -> dict[str, object]:
    return {"beat": beat, "entry": "digest", "slot": slot, "task_id": task_id}


def test_a_slot_sent_again_after_a_restart_keeps_its_number() -> None:
    # beat-1 sent the slot after 10:00:00, was killed, came back from a schedule
    # file synced before that send, and sent it again; then its next one.
    sends = [
        send("beat-1", "2026-12-02T10:00:00", "a"),
        send("beat-1", "2026-12-02T10:00:00", "b"),
        send("beat-1", "2026-12-02T10:00:05", "c"),
    ]
    numbers = slot_numbers(sends)
    assert numbers[("beat-1", "digest", "2026-12-02T10:00:00")] == 1
    assert numbers[("beat-1", "digest", "2026-12-02T10:00:05")] == 2


def test_two_beats_number_their_own_slots_alike() -> None:
    # Each beat's entry was created as it started: their last run times differ,
    # their n-th slots are the same run.
    sends = [
        send("beat-2", "2026-12-02T10:00:00.300", "x"),
        send("beat-1", "2026-12-02T10:00:00.100", "a"),
        send("beat-1", "2026-12-02T10:00:02.100", "b"),
        send("beat-2", "2026-12-02T10:00:02.300", "y"),
    ]
    numbers = slot_numbers(sends)
    assert numbers[("beat-1", "digest", "2026-12-02T10:00:02.100")] == 2
    assert numbers[("beat-2", "digest", "2026-12-02T10:00:02.300")] == 2


def beat_history(slots: list[str], completed: list[bool]) -> History:
    history = History()
    for number, (slot, done) in enumerate(zip(slots, completed, strict=True)):
        task_id = f"t{number}"
        history.add(SENT, at=1.0, task_id=task_id, task="digest", business_key=slot, slot=slot)
        history.add(
            LEDGER,
            task_id=task_id,
            attempt=1,
            hostname="celery@w1",
            started_at=2.0,
            written_at=None,
            finished_at=2.5 if done else None,
        )
    history.add(SETTLED, at=9.0, settled=True, reason="drained and quiet")
    return history


def test_a_slot_whose_task_completed_from_two_messages_ran_twice() -> None:
    history = beat_history(["digest#1", "digest#1", "digest#2"], [True, True, True])
    assert check(history, None, fault_expected=False).counts.duplicate_scheduled_runs == 1


def test_a_second_message_of_a_slot_that_never_completed_is_no_second_run() -> None:
    history = beat_history(["digest#1", "digest#1"], [True, False])
    assert check(history, None, fault_expected=False).counts.duplicate_scheduled_runs == 0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workload": "beat"}, "needs task=digest"),
        (
            {"fault": "sender-kill", "at": "task_start"},
            "fault=sender-kill needs workload=producer or beat",
        ),
        ({"beats": 2}, "beats needs workload=beat"),
        (
            {"workload": "beat", "task": "digest", "tasks": 40, "beat_interval": 2},
            "longer than a run waits for beat",
        ),
        (
            {"workload": "beat", "app": "proj.celery:app", "task": "t", "beat_interval": 5},
            "a project's beat runs its own",
        ),
    ],
)
def test_beat_settings_that_cannot_run_are_refused(values: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        make_settings(**values).validate()
