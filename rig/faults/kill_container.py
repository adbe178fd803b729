"""SIGKILL the whole worker that reached the checkpoint: its container (docker)
or its main process and process group (local). Nothing runs its shutdown:
unacked messages wait for the visibility timeout."""

from __future__ import annotations

from rig.backends.base import Backend
from rig.broker import CheckpointReport
from rig.faults import FaultRecord, record, worker_name

NAME = "kill-container"


def inject(backend: Backend, report: CheckpointReport, park_s: float) -> FaultRecord:
    return record(NAME, report, backend.kill_worker(worker_name(report)), park_s)
