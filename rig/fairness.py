"""The fairness workload: a burst of long and short tasks on N workers, under
each prefetch configuration, measured from Celery's events (rig.prefetch).

Long tasks go first, then short ones, as a batch of network retrievals
followed by indexing would. Each configuration then gets a second burst of
zero-second tasks whose rate is its short-task throughput: the price of
fetching one message at a time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from rig import prefetch
from rig.backends.base import WorkerSpec
from rig.errors import BadInput
from rig.events import EventListener, wait_finished
from rig.history import CELERY, NOTE, SENT, History
from rig.runner import WORKERS_ONLINE_S, Progress, Runner
from rig.settings import make_settings

TASKS = {
    "early": "exam_app.users.tasks.early_acknowledge",
    "late": "exam_app.users.tasks.late_acknowledge",
}
LONG_QUEUE = "long"
DEFAULT_QUEUE = "celery"


@dataclass(frozen=True)
class FairnessConfig:
    name: str
    title: str
    acks: str
    prefetch_multiplier: int
    disable_prefetch: bool
    routing: bool  # long tasks to their own queue, served by their own workers


CONFIGS = (
    FairnessConfig("early-ack", "early ack, multiplier 1 (the seed's)", "early", 1, False, False),
    FairnessConfig("late-ack", "late ack, multiplier 1", "late", 1, False, False),
    FairnessConfig(
        "disable-prefetch", "early ack, worker_disable_prefetch", "early", 1, True, False
    ),
    FairnessConfig(
        "multiplier-4", "early ack, multiplier 4 (Celery's default)", "early", 4, False, False
    ),
    FairnessConfig(
        "routing", "early ack, long tasks routed to their own workers", "early", 1, False, True
    ),
)
CONFIG_NAMES = tuple(config.name for config in CONFIGS)


@dataclass(frozen=True)
class Workload:
    workers: int = 3
    long_tasks: int = 2
    long_seconds: float = 3.0
    short_tasks: int = 6
    short_seconds: float = 0.2
    burst: int = 100  # zero-second tasks for the throughput figure

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_workload(
    *,
    workers: int = 3,
    long_tasks: int = 2,
    long_seconds: float = 3.0,
    short_tasks: int = 6,
    short_seconds: float = 0.2,
    burst: int = 100,
) -> Workload:
    """Validate the workload, so a bad flag is an error and not a silent default."""
    for name, value in (("long_tasks", long_tasks), ("short_tasks", short_tasks), ("burst", burst)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInput(f"{name}={value!r}: expected a whole number of at least 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 2:
        raise BadInput(f"workers={workers!r}: fairness needs at least 2 workers to compare")
    for name, seconds in (("long_seconds", long_seconds), ("short_seconds", short_seconds)):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise BadInput(f"{name}={seconds!r}: expected a number of seconds, at least 0")
    if short_seconds >= long_seconds:
        raise BadInput(f"short_seconds={short_seconds} must be below long_seconds={long_seconds}")
    return Workload(
        workers, long_tasks, float(long_seconds), short_tasks, float(short_seconds), burst
    )


def select_configs(names: list[str] | None) -> list[FairnessConfig]:
    if not names:
        return list(CONFIGS)
    unknown = sorted(set(names) - set(CONFIG_NAMES))
    if unknown:
        raise BadInput(
            f"unknown fairness configuration(s) {', '.join(unknown)}; "
            f"known: {', '.join(CONFIG_NAMES)}"
        )
    return [config for config in CONFIGS if config.name in names]


@dataclass
class FairnessResult:
    config: FairnessConfig
    workload: Workload
    metrics: prefetch.FairnessMetrics
    throughput_per_s: float
    spans: list[prefetch.TaskSpan]
    consumers: dict[str, set[str]]
    history: History
    complete: bool

    def as_json(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "name": self.config.name,
            "title": self.config.title,
            "acks": self.config.acks,
            "prefetch_multiplier": self.config.prefetch_multiplier,
            "disable_prefetch": self.config.disable_prefetch,
            "routing": self.config.routing,
            "complete": self.complete,
            "unfair_wait_s": round(m.unfair_wait_s, 3),
            "held_behind": m.held_behind,
            "held_behind_s": round(m.held_behind_s, 3),
            "max_held_by_one_worker": m.max_held_by_one_worker,
            "makespan_s": round(m.makespan_s, 3),
            "utilisation": {worker: round(u, 3) for worker, u in m.utilisation.items()},
            "short_task_throughput_per_s": round(self.throughput_per_s, 1),
            "per_kind": m.per_kind,
        }


def _specs(config: FairnessConfig, workload: Workload) -> list[WorkerSpec]:
    settings = make_settings(
        acks=config.acks,  # type: ignore[arg-type]
        prefetch_multiplier=config.prefetch_multiplier,
        # Nothing is killed here: Redis' default visibility timeout, so a task
        # reserved for a while is not restored and run a second time meanwhile.
        visibility_timeout=3600.0,
    )
    disable = {"CELERY_WORKER_DISABLE_PREFETCH": str(config.disable_prefetch).lower()}
    environment = settings.worker_environment() | disable
    # With routing, all but one worker serve the long queue; the last serves the rest.
    long_workers = workload.workers - 1 if config.routing else 0
    return [
        WorkerSpec(
            f"w{index}",
            environment,
            (LONG_QUEUE,) if index <= long_workers else (DEFAULT_QUEUE,),
        )
        for index in range(1, workload.workers + 1)
    ]


class FairnessRun:
    """One configuration on one started backend: workers, two bursts, metrics."""

    def __init__(self, runner: Runner, config: FairnessConfig, workload: Workload) -> None:
        self.runner = runner
        self.config = config
        self.workload = workload
        self.history = History()

    def _send(self, kind: str, count: int, seconds: float, queue: str) -> list[prefetch.SentTask]:
        batch = []
        for index in range(count):
            sent_at = time.time()
            result = self.runner.app.send_task(
                TASKS[self.config.acks],
                kwargs={"seconds": seconds, "key": f"{kind}-{index}"},
                queue=queue,
            )
            self.history.add(SENT, task_id=result.id, task=kind, queue=queue)
            batch.append(prefetch.SentTask(result.id, kind, queue, sent_at))
        return batch

    def _wait_finished(self, batch: list[prefetch.SentTask], deadline_s: float) -> bool:
        left = wait_finished(self.history, {task.task_id for task in batch}, deadline_s)
        if left:
            self.history.add(NOTE, text=f"{left} task(s) did not finish within {deadline_s:.0f} s")
        return not left

    def run(self, say: Progress) -> FairnessResult:
        backend = self.runner.backend
        self.runner.broker.reset()
        self.runner.store.reset()
        listener = EventListener(self.runner.app, self.history)
        listener.start()
        specs = _specs(self.config, self.workload)
        w = self.workload
        try:
            say(f"fairness {self.config.name}: starting {len(specs)} workers")
            backend.start_workers(specs)
            listener.wait_workers_online([s.nodename for s in specs], WORKERS_ONLINE_S)
            say(f"fairness {self.config.name}: {w.long_tasks} long + {w.short_tasks} short tasks")
            long_queue = LONG_QUEUE if self.config.routing else DEFAULT_QUEUE
            mix = self._send("long", w.long_tasks, w.long_seconds, long_queue)
            mix += self._send("short", w.short_tasks, w.short_seconds, DEFAULT_QUEUE)
            work_s = w.long_tasks * w.long_seconds + w.short_tasks * w.short_seconds
            complete = self._wait_finished(mix, 30 + 2 * work_s)
            say(f"fairness {self.config.name}: burst of {w.burst} zero-second tasks")
            burst = self._send("burst", w.burst, 0.0, DEFAULT_QUEUE)
            complete = self._wait_finished(burst, 30 + w.burst) and complete
        except TimeoutError as error:
            self.history.add(NOTE, text=str(error))
            mix, burst, complete = [], [], False
        finally:
            listener.stop()
            backend.stop_workers()
        events = [event.data for event in self.history.events(CELERY)]
        consumers = {spec.nodename: set(spec.queues) for spec in specs}
        mix_spans = prefetch.spans_from_events(mix, events)
        return FairnessResult(
            config=self.config,
            workload=w,
            metrics=prefetch.measure(mix_spans, consumers, len(mix)),
            throughput_per_s=prefetch.throughput(prefetch.spans_from_events(burst, events)),
            spans=mix_spans,
            consumers=consumers,
            history=self.history,
            complete=complete and len(mix_spans) == len(mix),
        )


def run_fairness(
    runner: Runner, configs: list[FairnessConfig], workload: Workload, say: Progress
) -> list[FairnessResult]:
    return [FairnessRun(runner, config, workload).run(say) for config in configs]


def as_json(results: list[FairnessResult], workload: Workload, backend: str) -> dict[str, Any]:
    return {
        "configs": [result.as_json() for result in results],
        "settings": {"backend": backend, "concurrency": 1, **workload.as_dict()},
    }
