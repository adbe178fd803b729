"""SIGKILL only the prefork child running the task (the pid the checkpoint
reported). The main worker lives on and sees WorkerLostError."""

from __future__ import annotations

from rig.backends.base import Backend
from rig.broker import CheckpointReport
from rig.faults import FaultRecord, record, worker_name

NAME = "kill-pool-child"


def inject(backend: Backend, report: CheckpointReport, park_s: float) -> FaultRecord:
    return record(NAME, report, backend.kill_process(worker_name(report), report.pid), park_s)
