"""One timeline of everything that happened in a run, as JSON lines.

Every part of the rig appends to the same History: the workload (tasks
sent), the Celery event listener, checkpoints, faults, backend events
(container died, process exited) and, at the end, the ledger and the rows.
The checker reads nothing else.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The kinds of event, and what their data holds.
SENT = "sent"  # task_id, task, business_key
CELERY = "celery"  # the raw Celery event: type, uuid, hostname, timestamp, ...
CHECKPOINT = "checkpoint"  # task_id, attempt, hostname, pid, point, reported_at
FAULT = "fault"  # a fault began: rig.faults.FaultRecord (name, target, action, landed, ...)
HEAL = "heal"  # what could be undone was: rig.faults.Heal (name, target, action, healed_at)
BACKEND = "backend"  # action (die, start, exit), worker, exit_code
LEDGER = "ledger"  # one attempt row: task_id, attempt, hostname, pid, redelivered, *_at
EFFECTS = "effects"  # the effects were read: source (SQL or MODULE:FUNCTION)
ROW = "row"  # a business key's side-effect rows: business_key, count
SETTLED = "settled"  # settled (bool), reason
ERROR = "error"  # the run crashed: message (type and first line)
BROKER = "broker"  # what the broker holds once the run settled: dead_lettered
NOTE = "note"  # anything worth reading in the timeline, free text in "text"
PRODUCED = "produced"  # a producer ended: task_id, published (task ids), raised ("" if nothing)


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


class History:
    """An append-only, thread-safe list of events."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._events = list(events)
        self._lock = threading.Lock()

    def add(self, kind: str, at: float | None = None, **data: Any) -> Event:
        event = Event(at=time.time() if at is None else at, kind=kind, data=data)
        with self._lock:
            self._events.append(event)
        return event

    def events(self, kind: str | None = None) -> list[Event]:
        with self._lock:
            snapshot = list(self._events)
        snapshot.sort(key=lambda event: event.at)
        return [event for event in snapshot if kind is None or event.kind == kind]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def celery(self, event_type: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events(CELERY) if e.data.get("type") == event_type]

    def write_jsonl(self, path: Path, **extra: Any) -> None:
        with path.open("a") as out:
            for event in self.events():
                record = json.loads(event.to_json())
                record.update(extra)
                out.write(json.dumps(record, sort_keys=True) + "\n")

    @classmethod
    def read_jsonl(cls, path: Path) -> History:
        events = []
        for line in path.read_text().splitlines():
            record = json.loads(line)
            events.append(Event(at=record["at"], kind=record["kind"], data=record["data"]))
        return cls(events)
