"""The fairness workload: a burst of long and short tasks on N workers, under
each prefetch configuration, measured from Celery's events (rig.prefetch).

Long tasks go first, then short ones, as a batch of network retrievals
followed by indexing would. Then rounds of zero-second tasks, interleaved
across the configurations, give each one's short-task throughput (median
and spread): the price of fetching one message at a time.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rig import contract, prefetch
from rig.backends.base import SHARED_NODE, WorkerSpec
from rig.errors import BadInput
from rig.history import CELERY, NOTE, SENT, History
from rig.schema import setting
from rig.settings import TRANSPORT_NAMES, make_settings
from rig.target import Target, resolve
from rig.transports import DEFAULT_TRANSPORT, TRANSPORTS

if TYPE_CHECKING:  # imported where a run starts: the command line stays quick
    from rig.crews import Crew
    from rig.runner import Progress, Runner

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
    transport: str = setting(
        DEFAULT_TRANSPORT,
        "the broker: prefetch is kombu's emulated QoS on Redis, basic.qos on RabbitMQ",
        choices=TRANSPORT_NAMES,
    )
    workers: int = setting(3, "workers of concurrency 1 (at least 2, to compare)", minimum=2)
    long_tasks: int = setting(2, "long tasks sent first", minimum=1)
    long_seconds: float = setting(3.0, "how long a long task runs, in seconds", minimum=0)
    short_tasks: int = setting(6, "short tasks sent right after the long ones", minimum=1)
    short_seconds: float = setting(0.2, "how long a short task runs, in seconds", minimum=0)
    burst: int = setting(300, "zero-second tasks per throughput round", minimum=1)
    rounds: int = setting(5, "throughput rounds, interleaved across the configurations", minimum=1)

    def validate(self) -> None:
        if self.short_seconds >= self.long_seconds:
            raise BadInput(
                f"short_seconds={self.short_seconds} must be below long_seconds={self.long_seconds}"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(workload: Workload) -> str:
    w = workload
    return (
        f"workload: {w.workers} workers, {w.long_tasks} x {w.long_seconds} s long then "
        f"{w.short_tasks} x {w.short_seconds} s short; throughput from {w.rounds} interleaved "
        f"round(s) of {w.burst} zero-second tasks (median, and the spread from min to max)"
    )


def select_configs(
    names: list[str] | None, transport: str = DEFAULT_TRANSPORT
) -> list[FairnessConfig]:
    """The named configurations (all by default) that apply to the transport:
    worker_disable_prefetch needs kombu's emulated prefetch, Redis' (celery-semantics:
    Prefetch)."""
    unknown = sorted(set(names or ()) - set(CONFIG_NAMES))
    if unknown:
        raise BadInput(
            f"unknown fairness configuration(s) {', '.join(unknown)}; "
            f"known: {', '.join(CONFIG_NAMES)}"
        )
    chosen = [config for config in CONFIGS if not names or config.name in names]
    emulated = TRANSPORTS[transport].EMULATED_PREFETCH
    if not emulated and any(config.disable_prefetch for config in chosen):
        if names:
            raise BadInput("disable-prefetch is Redis-only (worker_disable_prefetch)")
        chosen = [config for config in chosen if not config.disable_prefetch]
    return chosen


@dataclass
class FairnessResult:
    config: FairnessConfig
    workload: Workload
    metrics: prefetch.FairnessMetrics
    throughput_rounds: list[float]  # short tasks per second, one per round
    # Each round's rate over the first configuration's in the same round: the
    # machine's drift between runs cancels out (the rounds are interleaved).
    relative_rounds: list[float]
    spans: list[prefetch.TaskSpan]
    consumers: dict[str, set[str]]
    history: History
    complete: bool

    @property
    def label(self) -> str:
        """The configuration's name, with its transport unless Redis."""
        transport = self.workload.transport
        if transport == DEFAULT_TRANSPORT:
            return self.config.name
        return f"{self.config.name}@{transport}"

    @property
    def throughput_per_s(self) -> float:
        return statistics.median(self.throughput_rounds) if self.throughput_rounds else 0.0

    def as_json(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "name": self.label,
            "transport": self.workload.transport,
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
            "throughput_rounds_per_s": [round(r, 1) for r in self.throughput_rounds],
            "throughput_vs_first": round(statistics.median(self.relative_rounds), 2)
            if self.relative_rounds
            else None,
            "throughput_vs_first_rounds": [round(r, 2) for r in self.relative_rounds],
            "per_kind": m.per_kind,
        }


def _specs(config: FairnessConfig, workload: Workload, target: Target) -> list[WorkerSpec]:
    settings = make_settings(
        transport=workload.transport,
        acks=config.acks,
        prefetch_multiplier=config.prefetch_multiplier,
        # Nothing is killed here: Redis' default visibility timeout, so a task
        # reserved for a while is not restored and run a second time meanwhile.
        visibility_timeout=3600.0,
    )
    conf = settings.celery_settings()
    if config.disable_prefetch:
        conf["worker_disable_prefetch"] = True
    environment = settings.worker_environment() | {contract.CONF: json.dumps(conf)}
    # With routing, all but one worker serve the long queue; the last serves the rest.
    long_workers = workload.workers - 1 if config.routing else 0
    return [
        WorkerSpec(
            f"w{index}",
            environment | target.environment(),
            (LONG_QUEUE,) if index <= long_workers else (DEFAULT_QUEUE,),
            transport=workload.transport,
            broker_setup=TRANSPORTS[workload.transport].crew_setup(settings),
            database=target.database,
        )
        for index in range(1, workload.workers + 1)
    ]


class FairnessRun:
    """One configuration's crew and history: the mixed burst, then throughput rounds."""

    def __init__(self, crew: Crew, config: FairnessConfig, workload: Workload) -> None:
        self.crew = crew
        self.config = config
        self.workload = workload
        self.history = History()
        self.mix: list[prefetch.SentTask] = []
        self.rounds: list[list[prefetch.SentTask]] = []
        self.complete = True

    def _send(self, kind: str, count: int, seconds: float, queue: str) -> list[prefetch.SentTask]:
        batch = []
        for index in range(count):
            sent_at = time.time()
            result = self.crew.app.send_task(
                TASKS[self.config.acks],
                kwargs={"seconds": seconds, "key": f"{kind}-{index}"},
                queue=queue,
            )
            self.history.add(SENT, task_id=result.id, task=kind, queue=queue)
            batch.append(prefetch.SentTask(result.id, kind, queue, sent_at))
        return batch

    def _measure(self, send: Callable[[], list[prefetch.SentTask]], deadline_s: float) -> list:
        """Send a batch with the event listener on, and wait (bounded) for all of it."""
        from rig.events import EventListener, wait_finished

        listener = EventListener(self.crew.app, self.history)
        listener.start()
        try:
            batch = send()
            left = wait_finished(self.history, {task.task_id for task in batch}, deadline_s)
        finally:
            listener.stop()
        if left:
            self.history.add(NOTE, text=f"{left} task(s) did not finish within {deadline_s:.0f} s")
            self.complete = False
        return batch

    def run_mix(self) -> None:
        w = self.workload
        long_queue = LONG_QUEUE if self.config.routing else DEFAULT_QUEUE

        def send() -> list[prefetch.SentTask]:
            mix = self._send("long", w.long_tasks, w.long_seconds, long_queue)
            return mix + self._send("short", w.short_tasks, w.short_seconds, DEFAULT_QUEUE)

        work_s = w.long_tasks * w.long_seconds + w.short_tasks * w.short_seconds
        self.mix = self._measure(send, 30 + 2 * work_s)

    def run_round(self) -> None:
        burst = self.workload.burst
        send = lambda: self._send("burst", burst, 0.0, DEFAULT_QUEUE)  # noqa: E731
        self.rounds.append(self._measure(send, 30 + burst / 5))

    def rates(self) -> list[float]:
        """Short tasks per second, one per throughput round."""
        events = [event.data for event in self.history.events(CELERY)]
        return [
            prefetch.throughput(prefetch.spans_from_events(batch, events)) for batch in self.rounds
        ]

    def result(self, rates: list[float], baseline: list[float]) -> FairnessResult:
        """The figures, from this configuration's rate in each round (`rates`) and
        the first configuration's (`baseline`)."""
        events = [event.data for event in self.history.events(CELERY)]
        consumers = {spec.nodename: set(spec.queues) for spec in self.crew.specs}
        mix_spans = prefetch.spans_from_events(self.mix, events)
        return FairnessResult(
            config=self.config,
            workload=self.workload,
            metrics=prefetch.measure(mix_spans, consumers, len(self.mix)),
            throughput_rounds=rates,
            relative_rounds=[
                rate / base for rate, base in zip(rates, baseline, strict=False) if base
            ],
            spans=mix_spans,
            consumers=consumers,
            history=self.history,
            complete=self.complete and bool(self.mix) and len(mix_spans) == len(self.mix),
        )


def run_fairness(
    runner: Runner, configs: list[FairnessConfig], workload: Workload, say: Progress
) -> list[FairnessResult]:
    """Every configuration's crew starts first and stays up, each on its own Redis
    database, so the throughput rounds can interleave the configurations: a
    slow moment of the machine then spreads over all of them, not one."""
    from rig.crews import CrewFailed

    say(f"fairness: starting {len(configs)} x {workload.workers} workers")
    pool = runner.crews
    pool.dismiss_finished()  # no idle crew of an earlier scenario while measuring
    target = resolve(make_settings())  # the built-in exam_app, whose tasks keep a ledger row
    runner.provision.store(target, say)
    runner.provision.broker(workload.transport, SHARED_NODE, say)
    crews = [pool.start(_specs(config, workload, target)) for config in configs]
    runs: list[FairnessRun] = []
    try:
        for config, crew in zip(configs, crews, strict=True):
            try:
                pool.wait_ready(crew)
            except CrewFailed as failed:
                raise failed.error from None
            runs.append(FairnessRun(crew, config, workload))
        for run in runs:
            say(
                f"fairness {run.config.name}: {workload.long_tasks} long + "
                f"{workload.short_tasks} short tasks"
            )
            run.run_mix()
        for number in range(1, workload.rounds + 1):
            for run in runs:
                say(
                    f"fairness round {number}/{workload.rounds}: {run.config.name}, "
                    f"{workload.burst} zero-second tasks"
                )
                run.run_round()
    except TimeoutError as error:
        for run in runs:
            run.history.add(NOTE, text=str(error))
            run.complete = False
    finally:
        for crew in crews:
            pool.dismiss(crew)
    rates = [run.rates() for run in runs]
    return [run.result(own, rates[0]) for run, own in zip(runs, rates, strict=True)]


def as_json(results: list[FairnessResult], workload: Workload, backend: str) -> dict[str, Any]:
    return {
        "configs": [result.as_json() for result in results],
        "settings": {"backend": backend, "concurrency": 1, **workload.as_dict()},
    }
