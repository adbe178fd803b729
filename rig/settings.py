"""The axes of the chaos matrix, each declared once (see rig.schema).

The CLI's flags and their help, the keys of a scenario file's [settings]
table, the `matrix` pytest marker's signature and the validation all come
from the Settings dataclass below, so a typo or an impossible combination
is an error with a message, never a silent default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from exam_app.users.checkpoints import POINTS
from rig import schema
from rig.broker import PARK_S
from rig.errors import BadInput
from rig.faults.registry import FAULTS
from rig.faults.registry import part as fault_part

TASK_NAMES: dict[str, str] = {
    "create": "exam_app.users.tasks.create_record",
    "get_or_create": "exam_app.users.tasks.get_or_create_record",
    "get_or_create_unconstrained": "exam_app.users.tasks.get_or_create_unconstrained",
}
Acks = Literal["early", "late"]
# "none" or a fault of the registry (rig/faults/registry.py).
FaultName = Literal[("none", *FAULTS)]  # type: ignore[valid-type]
# The task side names its checkpoints; the rig takes them from there.
Point = Literal[POINTS]  # type: ignore[valid-type]
TaskKind = Literal[tuple(TASK_NAMES)]  # type: ignore[valid-type]
Pool = Literal["prefork", "solo", "threads"]

# How often a surviving worker sweeps for unacked messages older than the
# visibility timeout (kombu 5.7 unacked_restore_interval, throttle 1).
RESTORE_INTERVAL_S = 0.25
setting = schema.setting


def _fault_help() -> str:
    kinds = "; ".join(f"{name}: {module.SUMMARY}" for name, module in FAULTS.items())
    return f"what hits the worker when a task reaches --at ({kinds}; none: nothing)"


@dataclass(frozen=True)
class CommonSettings:
    """The axes every scenario has; each fault adds its own (its module's Parameters)."""

    acks: Acks = setting(
        "late",
        "when the message is acknowledged: early (as a pool process takes it, "
        "Celery's default) or late (after the task returns)",
    )
    reject_on_worker_lost: bool = setting(
        False, "requeue the task when its pool process dies (task_reject_on_worker_lost)"
    )
    fault: FaultName = setting("none", _fault_help())
    at: Point = setting(
        "after_write",
        "the checkpoint inside the task where the fault lands: before its write, inside "
        "the write's open transaction, or after the write committed",
    )
    task: TaskKind = setting(
        "create",
        "the task under test: a naive create, get_or_create on a unique key, or "
        "get_or_create without a constraint",
    )
    workers: int = setting(2, "how many worker nodes consume the queue", minimum=1)
    tasks: int = setting(1, "how many tasks are sent, each with its own business key", minimum=1)
    task_seconds: float = setting(
        0.2, "how long each task's slow retrieval takes, in seconds", minimum=0
    )
    visibility_timeout: float = setting(
        2.0,
        "seconds after delivery before Redis hands an unacknowledged message to "
        "another worker (broker_transport_options)",
        minimum=1,
    )
    restart: bool = setting(
        False, "start the killed worker again at once, as an orchestrator would"
    )
    soft_shutdown_timeout: float = setting(
        0.0,
        "seconds running tasks get on a cold shutdown (worker_soft_shutdown_timeout)",
        minimum=0,
    )
    time_limit: float = setting(
        0.0, "hard time limit per task in seconds, 0 for none (task_time_limit)", minimum=0
    )
    acks_on_timeout: bool = setting(
        True, "acknowledge a late-ack task that hit its hard time limit (task_acks_on_timeout)"
    )
    memory_limit_mb: int = setting(
        0, "each worker's memory limit in MiB, 0 for none (a container's --memory)", minimum=0
    )

    pool: Pool = setting("prefork", "the worker's execution pool (worker_pool)")
    concurrency: int = setting(1, "processes or threads per worker (worker_concurrency)", minimum=1)
    prefetch_multiplier: int = setting(
        1, "messages reserved per process (worker_prefetch_multiplier)", minimum=0
    )

    def validate(self) -> None:
        """The combinations that cannot run: common ones, then the fault's own."""
        if self.restart and self.fault != "container":
            raise BadInput(
                "restart=true needs fault=container: only a killed worker can be restarted"
            )
        validate = fault_part(self.fault, "validate")
        if validate is not None:
            validate(self)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def worker_environment(self) -> dict[str, str]:
        """The exam_app settings (see exam_app/settings.py) a worker runs with."""
        return {
            "CELERY_TASK_ACKS_LATE": str(self.acks == "late").lower(),
            "CELERY_TASK_REJECT_ON_WORKER_LOST": str(self.reject_on_worker_lost).lower(),
            "CELERY_WORKER_POOL": self.pool,
            "CELERY_WORKER_CONCURRENCY": str(self.concurrency),
            "CELERY_WORKER_PREFETCH_MULTIPLIER": str(self.prefetch_multiplier),
            "CELERY_BROKER_VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            "CELERY_BROKER_UNACKED_RESTORE_INTERVAL": str(RESTORE_INTERVAL_S),
            "CELERY_BROKER_UNACKED_RESTORE_THROTTLE": "1",
            "CELERY_BROKER_UNACKED_MUTEX_EXPIRE": str(self.visibility_timeout),
            # A dead pool child turns into WorkerLostError after this wait.
            "CELERY_WORKER_LOST_WAIT": "1",
            "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": str(self.soft_shutdown_timeout),
            "CELERY_TASK_TIME_LIMIT": str(self.time_limit),
            "CELERY_TASK_ACKS_ON_TIMEOUT": str(self.acks_on_timeout).lower(),
            "RIG_CHECKPOINT_TIMEOUT": str(PARK_S),
        }


# The settings: the common axes and every fault's parameters, one frozen dataclass.
Settings = schema.compose(
    "Settings",
    CommonSettings,
    *(module.Parameters for module in FAULTS.values() if hasattr(module, "Parameters")),
)


def make_settings(**values: Any) -> Settings:
    """Settings from keyword arguments, every one checked against its declaration."""
    return schema.make(Settings, values)


def settings_from_mapping(values: dict[str, Any], where: str) -> Settings:
    """Settings from a file's table or a marker, naming `where` in any error."""
    return schema.make(Settings, values, where)
