"""An idle worker killed while a message is on its way to it: frozen (SIGSTOP
to its main process, the consumer) while it waits on the broker, one task
sent, the broker seen handing it over, then SIGKILL; the worker starts again,
as an orchestrator would.

On Redis the message is lost even with late ack: Redis removes it from the
list when it answers BRPOP, and kombu records it as unacknowledged only when
the worker reads that answer (kombu/transport/redis.py Channel._brpop_read,
then Channel._deliver → QoS.append, which writes unacked/unacked_index).
Killed in between (an OOM kill, SIGKILL at the end of a deploy's grace, a
lost node), nothing anywhere holds it. On RabbitMQ the message was delivered
to the consumer's channel and stays unacknowledged there: the connection
closes with the process and the broker requeues it.

The race is controlled, not hoped for. The worker is frozen only while
the broker lists it as waiting (Redis: a client blocked in BRPOP); the task
is sent; the kill comes only once the broker shows the message gone from the
queue. kombu's BRPOP times out every second (Transport.brpop_timeout): if it
ran out before the send, the message is still queued, so the rig takes it
back, lets the worker wait again, freezes it again and puts the same message
back, until the broker hands it over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rig.errors import BadInput
from rig.faults import FaultRecord, healed
from rig.history import FAULT, HEAL, NOTE, SENT
from rig.waiting import until_nothing_missing

if TYPE_CHECKING:
    from rig.plans import RunContext

NAME = "kill-fetching"
SUMMARY = "an idle worker frozen as it waits on the broker, a task sent, the worker killed"
NEEDS = ("kill",)
POINT = "fetching"  # no checkpoint: the task never started
TRIES = 5
WAITING_S = 10.0  # for the worker to wait on the broker
HANDED_OVER_S = 3.0  # for the broker to hand the message to the frozen worker


def validate(settings: Any) -> None:
    if settings.workers != 1 or settings.tasks != 1:
        raise BadInput(
            "fault=kill-fetching needs workers=1 and tasks=1: the one message must go to the "
            "frozen worker"
        )


@dataclass(frozen=True)
class Plan:
    """Freeze the waiting worker, send, see the handover, kill, start it again."""

    name: str
    settings: Any

    def execute(self, run: RunContext) -> None:
        crew, history = run.crew, run.history
        worker = crew.names[0]
        taken: Any = None  # the message taken back after a wait that ran out, if any
        for attempt in range(1, TRIES + 1):
            run.progress(f"{self.name}: freezing {worker} as it waits on the broker ({attempt})")
            frozen_at = self._freeze_waiting(run, worker)
            if frozen_at is None:
                continue
            if taken is None:
                run.send(0)
            else:
                crew.broker.put_back(taken)
            still_queued = until_nothing_missing(
                lambda: "queued" if crew.broker.ready_messages() else "", HANDED_OVER_S, 0.02
            )
            if not still_queued:
                self._kill(run, worker, frozen_at)
                return
            # Its wait ran out before the message came: take it back, try again.
            taken = crew.broker.take_back()
            run.backend.signal_worker(worker, "SIGCONT")
            if taken is None:
                history.add(NOTE, text=f"{worker} took the message as it resumed; no fault")
                return
        if taken is not None:
            crew.broker.put_back(taken)
        history.add(NOTE, text=f"{worker} was not frozen waiting in {TRIES} tries; no fault")

    @staticmethod
    def _freeze_waiting(run: RunContext, worker: str) -> float | None:
        """Freeze the worker while it waits on the broker: when, or None if the
        freeze caught it between two waits (then it is resumed)."""
        if not run.watch.consumers_waiting(1, WAITING_S):
            return None
        run.backend.signal_worker(worker, "SIGSTOP")
        frozen_at = time.time()
        if run.crew.broker.consumers_waiting():
            return frozen_at
        run.backend.signal_worker(worker, "SIGCONT")
        return None

    def _kill(self, run: RunContext, worker: str, frozen_at: float) -> None:
        issued_at = time.time()
        run.backend.signal_worker(worker, "SIGKILL")
        died = run.backend.wait_exit(worker, timeout_s=10)
        task_id = run.history.events(SENT)[0].data["task_id"]
        fault = FaultRecord(
            id=run.next_fault_id(),
            name=NAME,
            target=worker,
            action="SIGSTOP, send, SIGKILL",
            task_id=task_id,
            attempt=0,  # never started
            point=POINT,
            checkpoint_at=frozen_at,
            issued_at=issued_at,
            confirmed_at=died.at if died else None,
            landed=died is not None,
            ends_execution=True,
            detail=(died.detail if died else "not confirmed")
            + ", the message handed over and unread",
        )
        run.history.add(FAULT, at=fault.confirmed_at or time.time(), **fault.as_dict())
        run.backend.restart_worker(worker)
        heal = healed(fault, "restart", "started again after the kill")
        run.history.add(HEAL, at=heal.healed_at, **heal.as_dict())
