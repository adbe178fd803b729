"""The engine's events for the run's worker containers: every die, start
and oom of the workers a history observes (an oom kill in a worker's slot is
the kernel's, and only the engine reports it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import docker

from rig.backends.base import Observers
from rig.history import History


class WorkerEvents:
    def __init__(self, client: docker.DockerClient, run_label: str) -> None:
        self.client = client
        self.run_label = run_label  # "com.celery-rig.run=<run id>"
        self.observers = Observers()
        self._events: Any = None

    def start(self, container_prefix: str, worker_in: Callable[[str], str]) -> None:
        """Follow the events; a container's worker is the one `worker_in` names
        for the container's name less the prefix."""
        self._events = self.client.events(
            decode=True, filters={"label": self.run_label, "event": ["die", "start", "oom"]}
        )

        def pump() -> None:
            try:
                for event in self._events:
                    self._on_event(event, container_prefix, worker_in)
            except Exception:  # noqa: BLE001 - the stream ends when close() closes it
                return

        threading.Thread(target=pump, name="docker-events", daemon=True).start()

    def _on_event(
        self, event: dict[str, Any], container_prefix: str, worker_in: Callable[[str], str]
    ) -> None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        at = event.get("timeNano", time.time_ns()) / 1e9
        worker = worker_in(attributes.get("name", "").removeprefix(container_prefix))
        action, exit_code = event.get("Action"), attributes.get("exitCode")
        self.observers.record(worker, at=at, action=action, exit_code=exit_code)

    def observe(self, history: History, workers: list[str]) -> None:
        self.observers.observe(history, workers)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
