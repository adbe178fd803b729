"""The axes of the chaos matrix, each declared once (see rig.schema).

The CLI's flags and their help, the keys of a scenario file's [settings]
table, the `matrix` pytest marker's signature and the validation all come
from the Settings dataclass below, so a typo or an impossible combination
is an error with a message, never a silent default.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from rig import contract, schema
from rig.backends.base import ALONE_NODE, SHARED_NODE
from rig.checkpoints import AUTOMATIC, NEXT_PUBLISHED, RECEIVED, RETRIED
from rig.errors import BadInput
from rig.faults import blips, broker_outage, broker_restart, partition, pause, stall, term
from rig.faults.registry import FAULTS
from rig.faults.registry import part as fault_part
from rig.outbound import KEY_HEADER, Sink
from rig.outbound import POINTS as EFFECT_POINTS
from rig.target import BUILTIN_TASKS, TargetSettings
from rig.transports import DEFAULT_TRANSPORT, TRANSPORTS, rabbitmq, redis
from rig.workloads import beat, chord, countdown, group, producer
from rig.workloads.registry import WORKLOADS
from rig.workloads.registry import part as workload_part

Acks = Literal["early", "late"]
Pool = Literal["prefork", "solo", "threads"]
# "none" or a fault of the registry (rig/faults/registry.py); a transport of rig.transports.
FAULT_NAMES = ("none", *FAULTS)
TRANSPORT_NAMES = tuple(TRANSPORTS)
PUBLISH_RETRY_EVERY_S = 0.5  # between a publish's retries (publish_retry_seconds)
POINT_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")
setting = schema.setting


def _fault_help() -> str:
    kinds = "; ".join(f"{name}: {module.SUMMARY}" for name, module in FAULTS.items())
    return f"what hits the worker when a task reaches --at ({kinds}; none: nothing)"


@dataclass(frozen=True)
class CommonSettings:
    """The axes every scenario has; the target, each transport and each fault add
    their own (Settings below)."""

    transport: str = setting(
        DEFAULT_TRANSPORT,
        "the broker: "
        + "; ".join(f"{name}: {module.SUMMARY}" for name, module in TRANSPORTS.items()),
        choices=TRANSPORT_NAMES,
    )
    acks: Acks | None = setting(
        None,
        "when the message is acknowledged: early (as a pool process takes it, "
        "Celery's default) or late (after the task returns); overrides task decorators",
    )
    reject_on_worker_lost: bool | None = setting(
        None, "requeue the task when its pool process dies (task_reject_on_worker_lost)"
    )
    fault: str = setting("none", _fault_help(), choices=FAULT_NAMES)
    fault_times: int = setting(
        1,
        "how many executions in turn the fault hits: each next one that reaches --at "
        "(a task that dies every time)",
        minimum=1,
    )
    at: str = setting(
        "after_commit",
        f"the checkpoint where the fault lands: {', '.join(AUTOMATIC)} (passed in every "
        f"task, no code change), {', '.join(EFFECT_POINTS)} (around an outbound HTTP call or "
        f"email), {NEXT_PUBLISHED} (a chain's step returned, its next step published), "
        f"{RECEIVED} (a message a worker holds, not started: a "
        f"prefetched or an ETA one), {RETRIED} (a task that called self.retry, its retry "
        "message out), or a name your code passes to rig.checkpoint()",
    )
    workload: str = setting(
        "keyed",
        "what a run sends: "
        + "; ".join(f"{name}: {module.SUMMARY}" for name, module in WORKLOADS.items()),
        choices=tuple(WORKLOADS),
    )
    task: str = setting(
        "create",
        "the task under test: its registered name with --app; for the built-in exam_app "
        f"one of {', '.join(BUILTIN_TASKS)}",
    )
    workers: int = setting(2, "how many worker nodes consume the queue", minimum=1)
    tasks: int = setting(1, "how many tasks are sent, each with its own business key", minimum=1)
    task_seconds: float = setting(
        0.2, "how long each task's slow retrieval takes, in seconds", minimum=0
    )
    restart: bool = setting(
        False, "start the killed worker again at once, as an orchestrator would"
    )
    soft_shutdown_timeout: float = setting(
        0.0,
        "seconds running tasks get on a cold shutdown (worker_soft_shutdown_timeout), "
        "0 to keep the app's own",
        minimum=0,
    )
    soft_shutdown_on_idle: bool | None = setting(
        None,
        "give a cold shutdown its soft-shutdown wait even with no task running, as when "
        "the worker only holds countdown tasks (worker_enable_soft_shutdown_on_idle)",
    )
    time_limit: float = setting(
        0.0,
        "hard time limit per task in seconds (task_time_limit), 0 to keep the app's own",
        minimum=0,
    )
    cancel_on_connection_loss: bool | None = setting(
        None,
        "cancel running late-ack tasks when the worker loses the broker "
        "(worker_cancel_long_running_tasks_on_connection_loss, Celery's default off)",
    )
    publish_retry_seconds: float = setting(
        0.0,
        "how long a publish keeps retrying while the broker is away "
        "(task_publish_retry_policy, every 0.5 s), 0 to keep the app's own (Celery's: "
        "3 retries within about 0.6 s)",
        minimum=0,
    )
    acks_on_timeout: bool | None = setting(
        None, "acknowledge a late-ack task that hit its hard time limit (task_acks_on_timeout)"
    )
    max_tasks_per_child: int = setting(
        0,
        "tasks a pool process runs before it is replaced (worker_max_tasks_per_child), "
        "0 to keep the app's own",
        minimum=0,
    )
    max_memory_per_child_mb: int = setting(
        0,
        "MiB of resident memory after which a pool process is replaced once its task "
        "ends (worker_max_memory_per_child; Linux counts the process's peak), "
        "0 to keep the app's own",
        minimum=0,
    )
    allocate_mb: int = setting(
        0,
        "MiB each built-in task allocates and holds from its first checkpoint on "
        "(for fault=oom and max_memory_per_child_mb)",
        minimum=0,
    )
    memory_limit_mb: int = setting(
        0, "each worker's memory limit in MiB, 0 for none (a container's --memory)", minimum=0
    )

    result_backend: Literal["none", "redis"] = setting(
        "none",
        "where the workers store task results: none (the rig's default), or redis (the "
        "rig's own, a database of its control Redis), as a chord needs",
    )
    http_status: int = setting(
        200, "the status the rig's HTTP sink answers every outbound call with", minimum=100
    )
    http_body: str = setting("{}", "the body the rig's HTTP sink answers with")
    idempotency_header: str = setting(
        KEY_HEADER,
        "the request header the sink reads an idempotency key from (besides "
        f"{KEY_HEADER}): a repeated key gets the first answer and no second effect",
    )
    idempotency_key_seconds: float = setting(
        86400.0,
        "how long the sink remembers an idempotency key, as a payment provider does "
        "(0: keys are not honoured)",
        minimum=0,
    )

    pool: Pool | None = setting(None, "the worker's execution pool (worker_pool)")
    concurrency: int | None = setting(
        None, "processes or threads per worker (worker_concurrency)", minimum=1
    )
    prefetch_multiplier: int | None = setting(
        None, "messages reserved per process (worker_prefetch_multiplier)", minimum=0
    )


@dataclass(frozen=True)
class Settings(
    # A dataclass lists its bases' fields from the last base to the first: the
    # common axes come first, then the target's, each transport's, each fault's,
    # each workload's.
    beat.Parameters,
    group.Parameters,
    chord.Parameters,
    countdown.Parameters,
    producer.Parameters,
    broker_restart.Parameters,
    broker_outage.Parameters,
    partition.Parameters,
    blips.Parameters,
    stall.Parameters,
    pause.Parameters,
    term.Parameters,
    rabbitmq.Parameters,
    redis.Parameters,
    TargetSettings,
    CommonSettings,
):
    """Every setting of a run: one frozen dataclass, written out so it type-checks
    (tests/unit/test_settings.py checks it holds every fault's, transport's and
    workload's Parameters)."""

    def validate(self) -> None:
        """The combinations that cannot run: common ones, the target's, the fault's."""
        if self.fault_times > 1 and self.fault == "none":
            raise BadInput("fault_times needs a fault")
        if self.restart and self.fault != "container":
            raise BadInput(
                "restart=true needs fault=container: only a killed worker can be restarted"
            )
        if self.at == RECEIVED:
            if not fault_part(self.fault, "LANDS_WHILE_HELD", False):
                held = [name for name in FAULTS if fault_part(name, "LANDS_WHILE_HELD", False)]
                raise BadInput(
                    f"at={RECEIVED} needs a fault that acts on the whole worker "
                    f"({', '.join(held)}): a message held there has no pool process to hit"
                )
        elif not POINT_NAME.match(self.at) or (
            not self.app and self.at not in self.builtin_points()
        ):
            raise BadInput(f"at={self.at!r}: expected one of " + ", ".join(self.builtin_points()))
        calls = self.tasks if workload_part(self.workload, "BUILDS_CALLS", True) else 0
        self.validate_target(self.task, calls)
        unsupported = TRANSPORTS[self.transport].unsupported(self)
        if unsupported:
            raise BadInput(f"transport={self.transport}: {unsupported}")
        for validate in (
            fault_part(self.fault, "validate"),
            workload_part(self.workload, "validate"),
        ):
            if validate is not None:
                validate(self)
        if self.allocate_mb and self.app:
            raise BadInput(
                "allocate_mb needs the built-in tasks: they allocate when asked, a task of "
                "yours would not"
            )
        self._no_other_workloads_settings()

    def _no_other_workloads_settings(self) -> None:
        """A workload's setting given with another workload is a mistake, not a no-op."""
        for name in WORKLOADS:
            parameters = workload_part(name, "Parameters")
            if name == self.workload or parameters is None:
                continue
            for declared in fields(parameters):
                if getattr(self, declared.name) != declared.default:
                    raise BadInput(f"{declared.name} needs workload={name}")

    def builtin_points(self) -> tuple[str, ...]:
        """The points the built-in exam_app's runs pass (a user's code may add its own)."""
        points = (*AUTOMATIC, *EFFECT_POINTS, NEXT_PUBLISHED, RECEIVED, RETRIED)
        return (*points, *self.workload_points())

    def workload_points(self) -> tuple[str, ...]:
        """Checkpoints the workload's own code passes (a producer's before_commit)."""
        return tuple(workload_part(self.workload, "POINTS", ()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def needs_broker_alone(self) -> str:
        """Why a run with these settings has a broker node alone ("" if it shares
        one): a fault that stops the broker, or a setting the whole broker reads
        (a crew starting beside it would read it too, or set it back)."""
        if fault_part(self.fault, "STOPS_BROKER", False):
            return f"fault={self.fault} stops the broker"
        wide = TRANSPORTS[self.transport].node_wide(self)
        return f"{wide} is one value for the whole broker" if wide else ""

    @property
    def broker_node(self) -> str:
        """Which of its transport's broker nodes a run with these settings uses
        (rig.backends.base): one that runs needing it alone take in turn."""
        return ALONE_NODE if self.needs_broker_alone() else SHARED_NODE

    def park_s(self) -> float:
        """How long an armed checkpoint holds its execution: the checkpoint's
        default, or longer for a fault that holds it through several steps."""
        return float(fault_part(self.fault, "PARK_S", contract.PARK_S))

    def task_kwargs(self) -> dict[str, Any]:
        """What the built-in task is called with beyond its key and seconds: its
        allocation, and what the fault adds."""
        task_kwargs = fault_part(self.fault, "task_kwargs")
        added = task_kwargs(self) if task_kwargs is not None else {}
        return ({"allocate_mb": self.allocate_mb} if self.allocate_mb else {}) | added

    def celery_settings(self) -> dict[str, Any]:
        """The Celery settings a worker's app runs with: the transport's (a short
        sweep for unacked messages on Redis), the rig's own (events, no result
        store), then each one given; those not given stay the app's."""
        conf: dict[str, Any] = TRANSPORTS[self.transport].celery_settings(self) | {
            "broker_connection_retry_on_startup": True,
            "result_backend": None,  # never the user's result store
            "worker_send_task_events": True,
            "task_send_sent_event": True,
            "worker_lost_wait": 1,  # a dead pool child turns into WorkerLostError after this
        }
        given = {
            "task_acks_late": None if self.acks is None else self.acks == "late",
            "task_reject_on_worker_lost": self.reject_on_worker_lost,
            "task_acks_on_timeout": self.acks_on_timeout,
            "worker_cancel_long_running_tasks_on_connection_loss": self.cancel_on_connection_loss,
            "worker_pool": self.pool,
            "worker_concurrency": self.concurrency,
            "worker_prefetch_multiplier": self.prefetch_multiplier,
            "task_time_limit": self.time_limit or None,
            "worker_max_tasks_per_child": self.max_tasks_per_child or None,
            "worker_max_memory_per_child": self.max_memory_per_child_mb * 1024 or None,
            "worker_soft_shutdown_timeout": self.soft_shutdown_timeout or None,
            "worker_enable_soft_shutdown_on_idle": self.soft_shutdown_on_idle,
            "task_publish_retry_policy": self.publish_retry_policy(),
        }
        return conf | {name: value for name, value in given.items() if value is not None}

    def publish_retry_policy(self) -> dict[str, float] | None:
        """kombu's retry policy for a publish that meets no broker, lasting
        publish_retry_seconds; None keeps the app's own."""
        if not self.publish_retry_seconds:
            return None
        every_s = PUBLISH_RETRY_EVERY_S
        return {
            "max_retries": math.ceil(self.publish_retry_seconds / every_s),
            "interval_start": 0,
            "interval_step": every_s,
            "interval_max": every_s,
        }

    def worker_environment(self) -> dict[str, str]:
        """What a worker's agent reads (rig.agent): the Celery settings, the park
        time and how the HTTP sink answers."""
        sink = Sink(
            self.http_status,
            self.http_body,
            self.idempotency_header,
            self.idempotency_key_seconds,
        )
        return {
            contract.CONF: json.dumps(self.celery_settings()),
            contract.PARK_SECONDS: str(self.park_s()),
            contract.SINK: json.dumps(asdict(sink)),
            contract.RESULTS: "" if self.result_backend == "none" else self.result_backend,
        }


def make_settings(**values: Any) -> Settings:
    """Settings from keyword arguments, every one checked against its declaration."""
    return schema.make(Settings, values)


def settings_from_mapping(values: dict[str, Any], where: str) -> Settings:
    """Settings from a file's table or a marker, naming `where` in any error."""
    return schema.make(Settings, values, where)
