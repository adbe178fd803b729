"""The engine's events for the run's containers: a worker's death, seen when
the engine reports it (a kill is confirmed by its `die` event, not by a
poll), and every die, start and oom of the workers a history observes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import docker

from rig.backends.base import Exit, Observers
from rig.history import BACKEND, History


class DeathWatch:
    def __init__(self, client: docker.DockerClient, run_label: str) -> None:
        self.client = client
        self.run_label = run_label  # "com.celery-rig.run=<run id>"
        self.observers = Observers()
        self._deaths: dict[str, threading.Event] = {}
        self._death_info: dict[str, tuple[float, str]] = {}
        self._events: Any = None

    def start(self, container_prefix: str) -> None:
        """Follow the events; a container's worker name is its name less the prefix."""
        self._events = self.client.events(
            decode=True, filters={"label": self.run_label, "event": ["die", "start", "oom"]}
        )

        def pump() -> None:
            try:
                for event in self._events:
                    self._on_event(event, container_prefix)
            except Exception:  # noqa: BLE001 - the stream ends when close() closes it
                return

        threading.Thread(target=pump, name="docker-events", daemon=True).start()

    def _on_event(self, event: dict[str, Any], container_prefix: str) -> None:
        attributes = event.get("Actor", {}).get("Attributes", {})
        at = event.get("timeNano", time.time_ns()) / 1e9
        container_id = event.get("id", "")
        if event.get("Action") == "die":
            self._death_info[container_id] = (at, attributes.get("exitCode", "?"))
            self._death(container_id).set()
        worker = attributes.get("name", "").removeprefix(container_prefix)
        history = self.observers.history_of(worker)
        if history is not None:
            history.add(
                BACKEND,
                at=at,
                action=event.get("Action"),
                worker=worker,
                exit_code=attributes.get("exitCode"),
            )

    def observe(self, history: History, workers: list[str]) -> None:
        self.observers.observe(history, workers)

    def expect(self, container_id: str) -> None:
        """A signal is about to go to this container: wait_death waits for the next die."""
        self._death(container_id).clear()

    def died_before_signal(self, container_id: str, state: dict[str, Any]) -> None:
        """The container had exited when a signal came: its death is the engine's
        record of it (State.FinishedAt, nanoseconds, UTC)."""
        finished = state.get("FinishedAt", "")
        seconds, _, fraction = finished.rstrip("Z").partition(".")
        at = datetime.fromisoformat(seconds).replace(tzinfo=UTC).timestamp()
        at += float(f"0.{fraction or 0}")
        self._death_info[container_id] = (at, str(state.get("ExitCode", "?")))
        self._death(container_id).set()

    def wait_death(self, container_id: str, timeout_s: float) -> Exit | None:
        if not self._death(container_id).wait(timeout_s):
            return None
        at, exit_code = self._death_info[container_id]
        return Exit(at, f"die event, exit code {exit_code}")

    def _death(self, container_id: str) -> threading.Event:
        return self._deaths.setdefault(container_id, threading.Event())

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
