"""Start a killed worker again, as an orchestrator would after a crash."""

from __future__ import annotations

import time

from rig.backends.base import Backend
from rig.faults import FaultRecord

NAME = "restart-worker"


def inject(backend: Backend, killed: FaultRecord) -> FaultRecord:
    worker = killed.target.split(" ", 1)[0]
    backend.restart_worker(worker)
    return FaultRecord(
        name=NAME,
        target=worker,
        signal="start",
        task_id=killed.task_id,
        attempt=killed.attempt,
        point=killed.point,
        checkpoint_at=killed.checkpoint_at,
        confirmed_at=time.time(),
        landed=True,
        detail="restarted after the kill",
    )
