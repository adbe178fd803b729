"""What a run's workload starts that sends on its own: producer processes
(rig.agent produce), each answering what it published and raised, and other
senders (beat). The run waits for them, bounded, once its plan is done.

Producers write their logs in a run directory of their own, where their
process groups are recorded: if the rig is killed, its next start (or
`celery-rig clean`) kills them and removes their logs, as for beats."""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from signal import Signals
from typing import Any, Protocol

from rig.backends.base import last_line
from rig.backends.run_dir import RunDirectory
from rig.control import Control
from rig.errors import RigError
from rig.history import NOTE, PRODUCED, History
from rig.target import marked_answer

PRODUCER_WAIT_S = 60.0  # a producer held at its checkpoint is let go within the park


@dataclass(frozen=True)
class Producer:
    """A producer process (rig.agent produce) and the log its answer ends."""

    task_id: str
    process: subprocess.Popen[bytes]
    log: Path

    def answer(self, control: Control) -> dict[str, Any]:
        """What it published and raised (rig.agent.produce), from its marked line;
        for one a signal killed (fault=sender-kill), what it had published by then."""
        if self.process.returncode is not None and self.process.returncode < 0:
            return {
                "published": control.published(self.task_id),
                "raised": f"killed by {Signals(-self.process.returncode).name}",
            }
        output = self.log.read_text(errors="replace")
        answer: dict[str, Any] | None = marked_answer(output)
        if answer is None:
            raise RigError(f"a producer failed: {last_line(output)}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.unlink(missing_ok=True)


class Sender(Protocol):
    """Processes a workload started that send on their own (beat)."""

    def wait(self, history: History) -> None:
        """Wait, bounded, until they are done; record what they sent."""

    def close(self) -> None:
        """Stop them, and remove what they left."""


@dataclass
class Senders:
    producers: list[Producer] = field(default_factory=list)
    others: list[Sender] = field(default_factory=list)
    _directory: RunDirectory | None = None  # the producers', once one starts

    def producer_log(self, task_id: str) -> Path:
        """Where the producer of task_id writes (in the producers' run directory)."""
        if self._directory is None:
            self._directory = RunDirectory(f"run-producers-{uuid.uuid4().hex[:12]}")
            self._directory.create()
        return self._directory.dir / f"producer-{task_id}.log"

    def add_producer(self, producer: Producer) -> None:
        assert self._directory is not None, "a producer's log comes from producer_log"
        self._directory.record(producer.process)
        self.producers.append(producer)

    def add_sender(self, sender: Sender) -> None:
        self.others.append(sender)

    def wait(self, history: History, control: Control) -> None:
        """Wait, bounded, for every producer, and record what each published and
        raised; one that did not answer (its code did not load) is the run's error.
        Then the same for the other senders (beat)."""
        deadline = time.time() + PRODUCER_WAIT_S
        try:
            for producer in self.producers:
                try:
                    producer.process.wait(max(0.0, deadline - time.time()))
                except subprocess.TimeoutExpired:  # killed below, with any other still running
                    message = f"a producer did not end within {PRODUCER_WAIT_S:g} s"
                    raise TimeoutError(message) from None
                answer = producer.answer(control)
                history.add(PRODUCED, task_id=producer.task_id, **answer)
                if answer["raised"]:
                    text = f"the producer of {producer.task_id} raised {answer['raised']}"
                    history.add(NOTE, text=text)
            for sender in self.others:
                sender.wait(history)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop every producer and sender still running, and remove what they left."""
        for producer in self.producers:
            producer.close()
        self.producers.clear()
        for sender in self.others:
            sender.close()
        self.others.clear()
        if self._directory is not None:
            self._directory.remove()
            self._directory = None
