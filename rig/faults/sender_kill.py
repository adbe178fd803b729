"""SIGKILL of a process the rig runs to send the work, at its point: a
producer (rig.workloads.producer) or a beat (rig.workloads.beat), as an OOM
kill or a `docker kill` takes a web process or beat.

- A producer killed at before_publish has committed its order (on_commit)
  and not sent its task: the classic dual write, never sent.
- A beat is started again at once by its process manager. Killed at
  after_beat_send, the message is on the broker and the schedule file does
  not say so yet (PersistentScheduler syncs the first send, then every 3
  minutes, celery/beat.py): the beat that comes back sends that slot again."""

from __future__ import annotations

import os
import signal
from typing import Any

from rig.backends.base import Exit
from rig.backends.pids import wait_gone
from rig.errors import BadInput
from rig.faults import FaultContext, FaultRecord, record

NAME = "sender-kill"
SUMMARY = "SIGKILL of the producer or beat process at the point (beat is started again)"
NEEDS = ()  # producers and beats run on this machine under either backend
SENDERS = ("producer", "beat")


def validate(settings: Any) -> None:
    if settings.workload not in SENDERS:
        raise BadInput(
            f"fault={NAME} needs workload={' or '.join(SENDERS)}: it kills the process that sends"
        )


def start(ctx: FaultContext) -> FaultRecord:
    pid = ctx.report.pid
    os.kill(pid, signal.SIGKILL)
    seen_gone = wait_gone(pid, timeout_s=10)  # dead; its parent (the rig) reaps it
    gone = None if seen_gone is None else Exit(seen_gone, "process table: gone or a zombie")
    target = f"{ctx.worker} pid {pid}"
    return record(NAME, ctx, "SIGKILL", gone, ends_execution=False, target=target)
