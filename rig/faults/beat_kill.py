"""SIGKILL of a beat process (rig.workloads.beat), which its process manager
starts again at once on its schedule file. Killed at after_beat_send, the
message is on the broker and the schedule file does not say so yet
(PersistentScheduler syncs the first send, then every 3 minutes,
celery/beat.py): the beat that comes back sends that slot again."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from rig.backends.base import Exit
from rig.backends.pids import zombie
from rig.errors import BadInput
from rig.faults import FaultContext, FaultRecord, record

NAME = "beat-kill"
SUMMARY = "SIGKILL of a beat process, started again at once (workload=beat)"
NEEDS = ()  # beat runs on this machine under either backend


def validate(settings: Any) -> None:
    if settings.workload != "beat":
        raise BadInput("fault=beat-kill needs workload=beat: it kills a beat process")


def start(ctx: FaultContext) -> FaultRecord:
    pid = ctx.report.pid
    os.kill(pid, signal.SIGKILL)
    gone = _wait_gone(pid, timeout_s=10)
    return record(
        NAME, ctx, "SIGKILL", gone, ends_execution=False, target=f"{ctx.worker} pid {pid}"
    )


def _wait_gone(pid: int, timeout_s: float) -> Exit | None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if zombie(pid):  # dead; its supervisor reaps it
            return Exit(time.time(), "process table: gone or a zombie")
        time.sleep(0.01)
    return None
