"""The axes of the chaos matrix, validated by one typed function.

make_settings() is what the CLI flags, the scenario files and the pytest
marker all go through, so a typo or an impossible combination is an error
with a message, never a silent default (as pytest-django validates django_db).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from rig.errors import BadInput

Acks = Literal["early", "late"]
Kill = Literal["container", "pool-child", "none"]
Point = Literal["before_write", "in_transaction", "after_write"]
TaskKind = Literal["create", "get_or_create", "get_or_create_unconstrained"]
Pool = Literal["prefork", "solo", "threads"]

TASK_NAMES: dict[str, str] = {
    "create": "exam_app.users.tasks.create_record",
    "get_or_create": "exam_app.users.tasks.get_or_create_record",
    "get_or_create_unconstrained": "exam_app.users.tasks.get_or_create_unconstrained",
}
# How often a surviving worker sweeps for unacked messages older than the
# visibility timeout (kombu 5.7 unacked_restore_interval, throttle 1).
RESTORE_INTERVAL_S = 0.5
# An armed checkpoint parks its task at most this long waiting for the kill.
PARK_S = 20.0


@dataclass(frozen=True)
class Settings:
    acks: Acks = "late"
    reject_on_worker_lost: bool = False
    kill: Kill = "none"
    at: Point = "after_write"
    task: TaskKind = "create"
    workers: int = 2
    tasks: int = 1
    task_seconds: float = 0.2
    visibility_timeout: float = 4.0
    restart: bool = False
    pool: Pool = "prefork"
    concurrency: int = 1
    prefetch_multiplier: int = 1

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
            "RIG_CHECKPOINT_TIMEOUT": str(PARK_S),
        }

    def redelivery_window_s(self) -> float:
        """How long after a kill a redelivery can still come: timeout plus two sweeps."""
        return self.visibility_timeout + 2 * RESTORE_INTERVAL_S + 1.0


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInput(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def _check_number(name: str, value: object, kind: type, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise BadInput(
            f"{name}={value!r}: expected a {'number' if kind is float else 'whole number'}"
        )
    if value < minimum:
        raise BadInput(f"{name}={value!r}: must be at least {minimum}")


def make_settings(
    *,
    acks: Acks = "late",
    reject_on_worker_lost: bool = False,
    kill: Kill = "none",
    at: Point = "after_write",
    task: TaskKind = "create",
    workers: int = 2,
    tasks: int = 1,
    task_seconds: float = 0.2,
    visibility_timeout: float = 4.0,
    restart: bool = False,
    pool: Pool = "prefork",
    concurrency: int = 1,
    prefetch_multiplier: int = 1,
) -> Settings:
    """Validate every axis and the combinations that cannot run."""
    _check_choice("acks", acks, get_args(Acks))
    _check_choice("kill", kill, get_args(Kill))
    _check_choice("at", at, get_args(Point))
    _check_choice("task", task, get_args(TaskKind))
    _check_choice("pool", pool, get_args(Pool))
    for name, flag in (("reject_on_worker_lost", reject_on_worker_lost), ("restart", restart)):
        if not isinstance(flag, bool):
            raise BadInput(f"{name}={flag!r}: expected true or false")
    _check_number("workers", workers, int, 1)
    _check_number("tasks", tasks, int, 1)
    _check_number("concurrency", concurrency, int, 1)
    _check_number("prefetch_multiplier", prefetch_multiplier, int, 0)
    _check_number("task_seconds", task_seconds, float, 0)
    _check_number("visibility_timeout", visibility_timeout, float, 1)
    if kill == "pool-child" and pool != "prefork":
        raise BadInput(f"kill=pool-child needs pool=prefork: the {pool} pool has no child process")
    if restart and kill != "container":
        raise BadInput("restart=true needs kill=container: only a killed worker can be restarted")
    return Settings(
        acks=acks,
        reject_on_worker_lost=reject_on_worker_lost,
        kill=kill,
        at=at,
        task=task,
        workers=workers,
        tasks=tasks,
        task_seconds=float(task_seconds),
        visibility_timeout=float(visibility_timeout),
        restart=restart,
        pool=pool,
        concurrency=concurrency,
        prefetch_multiplier=prefetch_multiplier,
    )


def settings_from_mapping(values: dict[str, Any], where: str) -> Settings:
    """make_settings(**values), naming `where` (a file, a marker) when a key is unknown."""
    known = {field.name for field in fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadInput(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        return make_settings(**values)
    except BadInput as error:
        raise BadInput(f"{where}: {error}") from None
