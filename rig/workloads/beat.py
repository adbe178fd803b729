"""Periodic tasks: celery beat, run by the rig in processes of its own on the
rig's broker and database (rig.beat), sends the work; each beat stops after
--tasks slots. `--beats 2` runs two beats on one schedule, each with its own
schedule file, as two hosts that both start beat do. A beat that dies
(fault=sender-kill) is started again at once on its schedule file, as a
process manager does.

The built-in app's schedule is one entry, `digest`, every --beat-interval
seconds, sending send_digest; a project's beat runs its own beat_schedule.

A slot is one run an entry is due for: the n-th distinct last run time a
beat sent the entry from. A beat restarted from a schedule file synced
before its last send sends that slot again; two beats each send every slot.
Each send is one SENT (its slot with it) and one PRODUCED (taken by the
broker or not: a send that raised is never_sent)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rig import beat, contract
from rig.backends.run_dir import RunDirectory
from rig.errors import BadInput
from rig.history import NOTE, PRODUCED, SENT, History
from rig.schema import setting

if TYPE_CHECKING:
    import redis

    from rig.plans import RunContext

NAME = "beat"
SUMMARY = "celery beat sends --tasks slots of its schedule (built in: one entry, digest)"
POINTS = beat.POINTS
ENTRY = "digest"  # the built-in schedule's one entry
BUILTIN_TASK = "digest"
BUILDS_CALLS = False  # beat's entries carry their own arguments: no call from --kwargs
MAX_RESTARTS = 10  # a beat that dies more often than faults kill it is broken: its log says why
WAIT_S = 90.0  # a beat sends its slots within this (slots * interval, restarts, an outage)


@dataclass(frozen=True)
class Parameters:
    beats: int = setting(1, "beat workload: beat processes running the schedule", minimum=1)
    beat_interval: float = setting(
        2.0, "beat workload: seconds between the built-in entry's runs", minimum=0.5
    )


def validate(settings: Any) -> None:
    if settings.app:
        if settings.beat_interval != Parameters.beat_interval:
            raise BadInput(
                "beat_interval sets the built-in schedule: a project's beat runs its own"
            )
        return
    if settings.task != BUILTIN_TASK:
        raise BadInput(f"workload=beat runs the built-in schedule: it needs task={BUILTIN_TASK}")
    if settings.tasks * settings.beat_interval > WAIT_S / 2:
        raise BadInput(
            f"workload=beat: {settings.tasks} slots of {settings.beat_interval:g} s take "
            f"longer than a run waits for beat ({WAIT_S / 2:g} s)"
        )


def send(run: RunContext, index: int) -> None:
    """The first unit starts the beats; each then sends every slot itself."""
    if index == 0:
        run.add_sender(Beats.start(run))


def describe(settings: Any) -> str:
    beats = f"{settings.beats} beats" if settings.beats > 1 else "beat"
    return f"{beats}, every {settings.beat_interval:g} s"


def schedule(settings: Any, task_name: str) -> dict[str, Any]:
    """The built-in beat_schedule (JSON: Celery reads a number as seconds)."""
    return {
        ENTRY: {
            "task": task_name,
            "schedule": settings.beat_interval,
            "kwargs": {"seconds": settings.task_seconds},
        }
    }


@dataclass
class Beats:
    """The run's beat processes, each restarted whenever it dies before its slots are sent."""

    run: RunContext
    directory: RunDirectory
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None

    @classmethod
    def start(cls, run: RunContext) -> Beats:
        # A run directory of its own: if the rig is killed, its next start (or
        # `celery-rig clean`) kills these beats and removes their files.
        directory = RunDirectory(f"run-beat-{uuid.uuid4().hex[:12]}")
        directory.create()
        beats = cls(run, directory)
        for number in range(1, run.settings.beats + 1):
            beats._start(f"beat-{number}")
        beats._supervisor = threading.Thread(
            target=beats._supervise, name="beat-supervisor", daemon=True
        )
        beats._supervisor.start()
        return beats

    def _start(self, name: str) -> None:
        files = self.directory.dir
        arguments = ["beat", name, str(files / f"{name}.db"), str(self.run.settings.tasks)]
        extra = {}
        if not self.run.settings.app:  # the built-in app has no schedule of its own
            built_in = {"beat_schedule": schedule(self.run.settings, self.run.target.task_name)}
            extra[contract.CONF] = json.dumps(self.run.settings.celery_settings() | built_in)
        process = self.run.start_process(arguments, files / f"{name}.log", extra, session=True)
        self.directory.record(process)
        self.processes[name] = process

    def _supervise(self) -> None:
        """Restart a beat that died (a non-zero exit: killed); one that exited 0 is done."""
        while not self._stop.wait(0.1):
            for name, process in list(self.processes.items()):
                code = process.poll()
                if code not in (None, 0) and len(self.restarts) < MAX_RESTARTS:
                    self.restarts.append(name)
                    self.run.history.add(NOTE, text=f"{name} exited ({code}): started again")
                    self._start(name)

    def wait(self, history: History) -> None:
        """Wait, bounded, for every beat to send its slots and exit; record each send."""
        deadline = time.time() + WAIT_S
        told = time.time()
        try:
            while any(p.poll() != 0 for p in self.processes.values()):
                if time.time() > deadline:
                    raise TimeoutError(f"beat did not send its slots within {WAIT_S:g} s")
                failed = self._failed_for_good()
                if failed:
                    raise RuntimeError(f"beat failed: {failed}")
                if time.time() - told > 3:
                    told = time.time()
                    self.run.progress(
                        f"{self.run.name}: beat sending, {self._sends()} send(s) so far"
                    )
                time.sleep(0.1)
        finally:
            self._stop.set()
            record_sends(self.run.crew.control.client, history)

    def _sends(self) -> int:
        return int(self.run.crew.control.client.llen(beat.BEAT_SENDS))

    def _failed_for_good(self) -> str:
        """A beat's last log line once it has died more often than any fault kills it."""
        if len(self.restarts) < MAX_RESTARTS:
            return ""
        log = max(self.directory.dir.glob("*.log"), key=lambda path: path.stat().st_mtime)
        lines = log.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def close(self) -> None:
        self._stop.set()
        if self._supervisor is not None:  # it starts no beat once it has seen the stop
            self._supervisor.join()
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        self.directory.remove()


def record_sends(client: redis.Redis, history: History) -> None:
    """Every send the beats recorded, as SENT (with its slot) and PRODUCED."""
    sends = [json.loads(raw) for raw in client.lrange(beat.BEAT_SENDS, 0, -1)]
    numbers = slot_numbers(sends)
    for send in sends:
        slot = f"{send['entry']}#{numbers[(send['beat'], send['entry'], send['slot'])]}"
        task_id = send["task_id"]
        history.add(
            SENT, at=send["at"], task_id=task_id, task=send["task"], business_key=slot, slot=slot
        )
        published = [task_id] if send["published"] else []
        history.add(PRODUCED, task_id=task_id, published=published, raised=send["raised"])


def slot_numbers(sends: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """Each beat's entry's slots, numbered from 1 in the order of their last run
    times: the same number is the same run, whichever beat sent it."""
    times: dict[tuple[str, str], set[str]] = {}
    for send in sends:
        times.setdefault((send["beat"], send["entry"]), set()).add(send["slot"])
    return {
        (beat_name, entry, slot): number
        for (beat_name, entry), slots in times.items()
        for number, slot in enumerate(sorted(slots), start=1)
    }
