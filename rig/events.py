"""Listens to Celery's events and appends them to the history.

On Redis, events are pub/sub: a receiver only hears what is published while
it listens, so the rig starts it before any worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend

from rig.errors import EnvironmentProblem
from rig.history import CELERY, History
from rig.prefetch import FINISHING_EVENTS
from rig.waiting import until_nothing_missing


def controller_app(
    broker_url: str,
    owner: str = "rig",
    declared: dict[str, str] | None = None,
    results_url: str | None = None,
) -> Celery:
    """A bare Celery app for sending by name and receiving events; no Django needed.

    kombu keeps one global connection pool per broker address and options, so
    apps on the same address share pooled connections, and a connection a
    broker restart killed would surface in a later app. `owner` (ignored by the
    transport) gives each app a pool of its own, closed with the app. With the
    workers' result store (`results_url`), it can send a chord: the sender
    records the chord's size there."""
    backend = f"{__name__}:SendingRedisBackend+{results_url}" if results_url else None
    app = Celery("rig-controller", broker=broker_url, backend=backend)
    app.conf.broker_connection_retry_on_startup = True
    app.conf.broker_transport_options = {"rig_owner": owner}
    app.conf.task_send_sent_event = False  # the history records "sent" itself
    app.conf.update(declared or {})  # as the workers declare: RabbitMQ refuses a second way
    return app


class SendingRedisBackend(RedisBackend):
    """The controller's result store: it sends chords (the sender records their
    size) and never awaits a result. Celery's Redis backend subscribes to every
    result a group awaits (vine's barrier) and unsubscribes as each result
    object is collected, at the latest as the interpreter exits, when the
    crew's Redis is gone: an ignored traceback."""

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        return result

    def remove_pending_result(self, result: Any) -> Any:
        return result


class EventListener:
    def __init__(self, app: Celery, history: History) -> None:
        self.app = app
        self.history = history
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celery-events", daemon=True)

    def _record(self, event: dict[str, Any]) -> None:
        # Heartbeats arrive every 2 s per worker and say nothing about tasks.
        if event.get("type") != "worker-heartbeat":
            self.history.add(CELERY, **event)

    def _run(self) -> None:
        # Reconnect whenever the broker goes away (a broker restart): what was
        # published meanwhile is lost, which the checker must not rely on.
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception:  # noqa: BLE001 - any connection error: try again
                time.sleep(0.2)

    def _listen(self) -> None:
        with self.app.connection_for_read() as connection:
            receiver = self.app.events.Receiver(connection, handlers={"*": self._record})
            with receiver.consumer_context(wakeup=False) as (conn, _channel, _consumers):
                while not self._stopping.is_set():
                    try:
                        # Redis subscribes to the event channel on the first poll.
                        conn.drain_events(timeout=0.1)
                    except TimeoutError:
                        pass
                    self._ready.set()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(timeout=15):
            raise EnvironmentProblem(
                "the Celery event receiver did not connect to the broker in 15 s"
            )

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)


def pool_processes(app: Celery, nodenames: list[str]) -> int:
    """How many executions the workers can run at once: the sum of their pools'
    sizes, as each worker reports it (the app's own concurrency or the rig's)."""
    stats = app.control.inspect(destination=nodenames, timeout=2).stats() or {}
    missing = set(nodenames) - set(stats)
    if missing:
        raise TimeoutError(f"workers {', '.join(sorted(missing))} did not report their pool")
    return sum(int(reply.get("pool", {}).get("max-concurrency", 1)) for reply in stats.values())


class WorkerStartFailed(RuntimeError):
    """A worker exited before it answered: its app does not start."""


def wait_answering(
    app: Celery,
    nodenames: list[str],
    timeout_s: float,
    failed_start: Callable[[], str] = lambda: "",
) -> None:
    """Wait, bounded, until every named worker answers a ping (its consumer is up);
    `failed_start` says why a worker that will never answer stopped, to stop early."""
    answered: set[str] = set()

    def missing() -> set[str]:
        why = failed_start()
        if why:
            raise WorkerStartFailed(why)
        for reply in app.control.ping(destination=sorted(set(nodenames) - answered), timeout=0.3):
            answered.update(reply)
        return set(nodenames) - answered

    still_missing = until_nothing_missing(missing, timeout_s, interval_s=0.05)
    if still_missing:
        raise TimeoutError(
            f"workers {', '.join(sorted(still_missing))} did not answer a ping in {timeout_s:.0f} s"
        )


def wait_finished(history: History, task_ids: set[str], timeout_s: float) -> int:
    """Wait, bounded, until every task has a finishing event; returns how many never did."""

    def unfinished() -> int:
        done = {e["uuid"] for kind in FINISHING_EVENTS for e in history.celery(kind)}
        return len(task_ids - done)

    return until_nothing_missing(unfinished, timeout_s)
