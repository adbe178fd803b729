"""Celery beat run by the rig (`python -m rig.agent beat NAME SCHEDULE SLOTS`):
the project's own beat, with its own scheduler, on the rig's broker and
database, with three things added around Celery's `Scheduler.apply_async`
(celery/beat.py), which every scheduler sends through:

- each send of an entry is recorded in the control store (BEAT_SENDS): the
  beat's name, the entry, the slot it sends (the entry's last run: a beat
  that restarts from a schedule file synced before that run sends the same
  slot again), the task id, and whether the broker took it or what it raised;
- the checkpoints `beat_due` (the entry is due, nothing sent yet) and
  `after_beat_send` (the broker took the message, Celery's after_task_publish;
  the schedule file is not synced yet: PersistentScheduler syncs the first
  send, then every 3 minutes);
- after SLOTS slots the beat stops (SystemExit: Celery's own clean exit,
  which syncs the schedule), so a run has a known amount of work.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

from celery import Celery
from celery.beat import ScheduleEntry, Scheduler
from celery.signals import after_task_publish

from rig.checkpoints import Execution, checkpoint, control, set_current
from rig.errors import one_line

BEAT_SENDS = "rig:beat:sends"  # list: one JSON record per send of an entry
BEAT_DUE = "beat_due"
AFTER_BEAT_SEND = "after_beat_send"
POINTS = (BEAT_DUE, AFTER_BEAT_SEND)
HOST = "beat"  # a beat's checkpoints come from "beat@<its name>"


def slots_key(name: str) -> str:
    return f"rig:beat:{name}:slots"


def run(app: Celery, name: str, schedule: str, slots: int) -> None:
    """Run beat until it has sent `slots` slots (a send that raised counts)."""
    install(name, slots)
    app.Beat(schedule=schedule, loglevel="INFO", quiet=True).run()


def install(name: str, slots: int) -> None:
    original = Scheduler.apply_async
    sending: dict[str, dict[str, Any]] = {}  # task id -> its send, until recorded

    def apply_async(
        self: Scheduler, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kw: Any
    ) -> Any:
        slot = entry.last_run_at.isoformat()
        _stop_after(name, slot, slots)
        task_id = str(uuid.uuid4())
        entry = _with_task_id(entry, task_id)
        send = {"beat": name, "entry": entry.name, "task": entry.task, "slot": slot}
        sending[task_id] = send | {"task_id": task_id}
        set_current(Execution(task_id, 0, f"{HOST}@{name}"))
        try:
            checkpoint(BEAT_DUE)
            return original(self, entry, producer, advance, **kw)
        except Exception as error:  # recorded, then Celery logs it ("Message Error")
            if task_id in sending:  # not taken by the broker
                _record(sending[task_id] | {"published": False, "raised": one_line(error)})
            raise
        finally:
            sending.pop(task_id, None)
            set_current(None)

    def on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
        send = sending.pop(str((headers or {}).get("id", "")), None)
        if send is not None:  # one of beat's sends, taken by the broker
            _record(send | {"published": True, "raised": ""})
            checkpoint(AFTER_BEAT_SEND)

    Scheduler.apply_async = apply_async
    after_task_publish.connect(on_publish, weak=False)


def _stop_after(name: str, slot: str, slots: int) -> None:
    """Beat's own clean exit once a new slot would be one too many."""
    client = control()
    if client is None or client.sismember(slots_key(name), slot):
        return
    if client.scard(slots_key(name)) >= slots:
        raise SystemExit(0)
    client.sadd(slots_key(name), slot)


def _with_task_id(entry: ScheduleEntry, task_id: str) -> ScheduleEntry:
    """The entry, sending under a task id the rig chose (Task.apply_async takes it
    from the entry's options), so a send that raised is known by its id too."""
    clone = copy.copy(entry)  # the schedule keeps the entry, and its options, as they were
    clone.options = {**entry.options, "task_id": task_id}
    return clone


def _record(send: dict[str, Any]) -> None:
    client = control()
    if client is not None:
        client.rpush(BEAT_SENDS, json.dumps(send | {"at": time.time()}))
