"""The rig's worker wrapper: `celery -A rig.agent worker` runs a user's own app,
unchanged, with the rig's broker, database and checkpoints.

Importing this module (in the worker's main process, before it forks):

0. installs the HTTP sink and the connection guard (rig.outbound): nothing
   the project's code sends leaves the process, and what it sends is
   recorded on the execution that sent it;
1. puts the project directory on sys.path and imports the user's app as
   `celery -A` would (RIG_APP, MODULE[:ATTR]);
2. if the app named its Django settings (the usual `os.environ.setdefault(
   "DJANGO_SETTINGS_MODULE", ...)`), swaps in rig.project_settings, which
   imports them and replaces every database alias, the caches and the mail
   backend by the rig's own (Django reads its settings lazily, so nothing has
   connected yet); an app module that set Django up as it loaded is refused,
   and CELERY_BROKER_URL and the like are taken out of the environment, where
   Celery would read them before any setting;
3. applies the Celery settings the rig overrides (RIG_CONF, JSON);
4. connects the signals that keep the write ledger and pass the automatic
   checkpoints, in each pool process:
   task_start (task_prerun), before_write (just before the execution's first
   INSERT/UPDATE/DELETE), in_transaction (that write ran inside an atomic
   block not yet committed), after_commit (the transaction holding it
   committed; in autocommit right after the statement) and task_end
   (task_postrun: the body returned, a late ack is not sent yet); a chain's
   step passes next_published first (its next step is published by then).

The ledger lives in the control store (its own Redis, never the user's), one
record per execution, written before the execution can go on past each step.

`python -m rig.agent probe|manage|effects` uses the same loading from the
controller's side: check a target, run Django's management commands
(migrate, loaddata) against the rig's database, read effects.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import redis
from celery import Celery, Task, current_app
from celery.app.utils import find_app
from celery.signals import (
    after_task_publish,
    before_task_publish,
    task_postrun,
    task_prerun,
    task_received,
    task_retry,
    worker_init,
    worker_ready,
)
from kombu.asynchronous import get_event_loop

from rig import contract, isolation, outbound
from rig.checkpoints import (
    BEFORE_PUBLISH,
    LEDGER_KEY,
    NEXT_PUBLISHED,
    PRODUCER,
    RETRIED,
    Execution,
    announce_ready,
    attempts_key,
    checkpoint,
    control,
    current,
    published_key,
    received,
    set_current,
)
from rig.errors import one_line

GENERATED_SETTINGS = "rig.project_settings"
WRITE = re.compile(
    r'^\s*(INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM)\s+[`"\[]?([\w.]+)',
    re.IGNORECASE,
)


def load_app() -> Celery:
    """The user's app with the rig's settings; Django (if any) pointed at the rig's database."""
    outbound.install(_record_effect)  # before the app's code runs: nothing leaves unseen
    project = os.environ.get(contract.PROJECT_DIR)
    if project and project not in sys.path:
        sys.path.insert(0, project)
    # The app's own module names its settings (Django's convention, os.environ.
    # setdefault in celery.py); none inherited may win. Remember them, put ours in front.
    for name in ("DJANGO_SETTINGS_MODULE", *isolation.CELERY_ENVIRONMENT):
        os.environ.pop(name, None)
    if os.environ.get(contract.GIVEN_SETTINGS):  # chosen with --env, over the app module's default
        os.environ["DJANGO_SETTINGS_MODULE"] = os.environ[contract.GIVEN_SETTINGS]
    app = find_app(os.environ[contract.APP])
    _refuse_configured_django()
    user_settings = os.environ.get("DJANGO_SETTINGS_MODULE")
    if user_settings and user_settings != GENERATED_SETTINGS:
        os.environ[contract.USER_SETTINGS] = user_settings
        os.environ["DJANGO_SETTINGS_MODULE"] = GENERATED_SETTINGS
    conf = json.loads(os.environ.get(contract.CONF) or "{}")
    isolation.take_over(app, conf | isolation.infrastructure(_broker_url(), _results_url()))
    check_isolation(app)
    _override_task_options(app, conf)
    return app


def _broker_url() -> str:
    return os.environ.get(contract.BROKER_URL, "memory://")


def _results_url() -> str | None:
    """The rig's result store when a run asks for one: the crew's corner of the control store."""
    return os.environ[contract.CONTROL_URL] if os.environ.get(contract.RESULTS) else None


def check_isolation(app: Celery) -> None:
    """Refuse (one line, before anything connects) unless the app's effective
    broker, result backend, databases, caches and mail are the rig's."""
    isolation.check_celery(app, _broker_url(), _results_url())
    if uses_django():
        isolation.check_django(os.environ[contract.DATABASE_URL])


def _refuse_configured_django() -> None:
    """An app module that set Django up as it was imported has loaded the user's
    own settings already; swapping them now would not take, and the workers
    would use the user's database."""
    if "django.conf" not in sys.modules:
        return
    from django.conf import settings

    if settings.configured and getattr(settings, "SETTINGS_MODULE", None) != GENERATED_SETTINGS:
        raise SystemExit(
            f"{os.environ[contract.APP]} sets Django up when it is imported (django.setup() or a "
            "settings read in the app module): the rig cannot give it its own database; "
            "move that into a function or a signal handler"
        )


def _override_task_options(app: Celery, conf: dict[str, Any]) -> None:
    """A given --acks or --reject-on-worker-lost wins over the tasks' decorators too."""
    options = {
        attribute: conf[name]
        for name, attribute in (
            ("task_acks_late", "acks_late"),
            ("task_reject_on_worker_lost", "reject_on_worker_lost"),
        )
        if name in conf
    }
    if not options:
        return
    app.loader.import_default_modules()  # registers the tasks (Django's autodiscovery too)
    for task in app.tasks.values():
        for attribute, value in options.items():
            setattr(task, attribute, value)


def uses_django() -> bool:
    return os.environ.get("DJANGO_SETTINGS_MODULE") == GENERATED_SETTINGS


# --- the write ledger -------------------------------------------------------
@dataclass
class Record:
    """One execution, as the checker reads it (rig.checker, LEDGER events)."""

    task_id: str
    task_name: str
    attempt: int
    hostname: str
    pid: int
    redelivered: bool
    acks_late: bool
    reject_on_worker_lost: bool
    started_at: float
    written_at: float | None = None  # the first write's transaction committed
    finished_at: float | None = None  # the body returned without an exception
    ended_at: float | None = None  # the body ended, however (a retry, an exception)
    state: str = ""
    writes: list[dict[str, Any]] = field(default_factory=list)
    integrity_errors: int = 0  # duplicates a constraint stopped
    chained: bool = False  # a chain's step with a step after it, published when the body returns
    calls: list[dict[str, Any]] = field(default_factory=list)  # HTTP the sink answered
    emails: list[dict[str, Any]] = field(default_factory=list)  # mail the rig's backend took
    refused: list[dict[str, Any]] = field(default_factory=list)  # connections the guard refused

    def save(self) -> None:
        client = control()
        if client is None:
            return
        try:
            client.hset(LEDGER_KEY, f"{self.task_id}:{self.attempt}", json.dumps(asdict(self)))
        except redis.RedisError:
            pass  # the control store is away: the ledger never breaks the user's task


_records = threading.local()


def _record() -> Record | None:
    return getattr(_records, "record", None)


def _record_effect(kind: str, effect: dict[str, Any]) -> None:
    """rig.outbound's recorder: an effect of the running execution, saved at once."""
    record = _record()
    if record is not None:
        getattr(record, kind).append(effect)
        record.save()


@task_prerun.connect
def _task_started(task_id: str, task: Task, **_: Any) -> None:
    _records.record = None  # nothing of an earlier execution is carried over
    set_current(None)
    client = control()
    if client is None:
        return
    try:
        attempt = int(client.incr(attempts_key(task_id)))
    except redis.RedisError:
        return  # no ledger for this execution rather than a broken task
    request = task.request
    record = Record(
        task_id=task_id,
        task_name=task.name,
        attempt=attempt,
        hostname=request.hostname or "",
        pid=os.getpid(),
        redelivered=bool((request.delivery_info or {}).get("redelivered")),
        acks_late=bool(task.acks_late),
        reject_on_worker_lost=bool(task.reject_on_worker_lost),
        started_at=time.time(),
        chained=bool(request.chain),
    )
    record.save()
    _records.record = record
    set_current(Execution(task_id, record.attempt, record.hostname))
    if uses_django():
        _watch_writes()
    checkpoint("task_start")


@task_received.connect
def _task_received(request: Any = None, **_: Any) -> None:
    """A message this worker reserved and has not started (prefetched, or an ETA
    one held until due): the point `received`, reported once the worker waits
    on the broker again (see _after_two_turns)."""
    if request is not None:
        _after_two_turns(partial(received, request.id, request.hostname or ""))


def _after_two_turns(report: Callable[[], None]) -> None:
    """Run `report` two turns of the worker's event loop from now: by then the
    consumer has raised its prefetch for an ETA message (RabbitMQ's basic.qos
    round trip, between two turns) and sent its next fetch (Redis' BRPOP, on
    a turn's tick, before or after the turn's callbacks by kombu version).
    A fault aimed at a held message then meets a worker that waits, as a
    worker holding a countdown does nearly all the time; one that lands in
    the middle takes other paths (a Redis worker reconnects instead of
    exiting; a SIGQUIT breaks the AMQP frame being read). A pool with no
    event loop (solo, threads) reports at once."""
    hub = get_event_loop()
    if hub is None:
        report()
        return
    hub.call_soon(lambda: hub.call_soon(report))


@task_retry.connect
def _task_retried(**_: Any) -> None:
    """Task.retry published the retry message and raised Retry; the original is
    acknowledged only after this (late ack): the point `after_retry`. The
    ledger says RETRY first, so an execution killed here still counts as retried."""
    record = _record()
    if record is not None:
        record.state = "RETRY"
        record.save()
    checkpoint(RETRIED)


@task_postrun.connect
def _task_ended(state: str | None = None, **_: Any) -> None:
    record = _record()
    if record is None:
        return
    try:
        record.state = state or ""
        record.ended_at = time.time()  # whatever the state: retried and ignored ones too
        if state == "SUCCESS":
            record.finished_at = record.ended_at
        record.save()
        if state == "SUCCESS" and record.chained:
            checkpoint(NEXT_PUBLISHED)  # Celery published the next step before postrun
        checkpoint("task_end")
    finally:
        _records.record = None
        set_current(None)


def _watch_writes() -> None:
    """Wrap every statement of this thread's connections (once per connection)."""
    from django.db import connections

    for connection in connections.all(initialized_only=False):
        if _on_statement not in connection.execute_wrappers:
            connection.execute_wrappers.append(_on_statement)


def _on_statement(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    from django.db import IntegrityError, transaction

    record, match = _record(), WRITE.match(sql)
    if record is None or current() is None or match is None:
        return execute(sql, params, many, context)
    first = not record.writes
    if first:
        checkpoint("before_write")
    try:
        result = execute(sql, params, many, context)
    except IntegrityError:
        record.integrity_errors += 1
        record.save()
        raise
    operation = match[1].split()[0].upper()
    write = {"table": match[2], "operation": operation, "rows": context["cursor"].rowcount}
    record.writes.append(write | {"committed": False})
    record.save()
    connection = context["connection"]
    committed = partial(_committed, record, len(record.writes) - 1, first)
    if connection.in_atomic_block:
        if first:
            checkpoint("in_transaction")
        # Django drops the callback if the transaction (or its savepoint) rolls back.
        transaction.on_commit(committed, using=connection.alias)
    else:
        committed()
    return result


def _committed(record: Record, index: int, first: bool) -> None:
    record.writes[index]["committed"] = True
    record.written_at = record.written_at or time.time()
    record.save()
    if first:
        checkpoint("after_commit")


# --- the controller's side: probe, manage, effects ---------------------------
def probe() -> dict[str, Any]:
    """What the controller needs to know before starting workers."""
    app = load_app()
    django = uses_django()
    if django:
        import django as django_module

        django_module.setup()
    app.loader.import_default_modules()
    tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
    return {"django": django, "tasks": tasks}


def manage(argv: list[str]) -> None:
    """Django's management command line, on the rig's database."""
    load_app()
    if not uses_django():
        raise SystemExit("not a Django project: the app names no DJANGO_SETTINGS_MODULE")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage", *argv])


def _function_of_the_app(target: str) -> Any:
    """MODULE:FUNCTION of the user's project, its app loaded and Django set up."""
    load_app()
    if uses_django():
        import django as django_module

        django_module.setup()
    from celery.utils.imports import symbol_by_name

    return symbol_by_name(target)


def effects(target: str) -> list[tuple[str, int]]:
    """Call the user's MODULE:FUNCTION (Django set up) for its (business key, count) rows."""
    return [(str(key), int(count)) for key, count in _function_of_the_app(target)()]


def _open_publishing_connection() -> None:
    """Open the app's pooled publishing connection, as a web process that has
    sent a task before holds it: a publish then meets a broker that went away
    on a live connection (kombu's retry policy applies), not on a first connect
    (bounded by broker_connection_timeout whatever the policy)."""
    with current_app.producer_or_acquire() as producer:
        producer.channel  # noqa: B018 - evaluating the channel promise connects


def produce(function: str, key: str, task_id: str, kwargs: str) -> dict[str, Any]:
    """Run a producer, MODULE:FUNCTION(key, task_id, kwargs), Django set up, as
    the execution `producer` of its task: a checkpoint in it parks when armed.
    The answer: the task ids it published (Celery's after_task_publish: the
    broker took the message) and what its own code raised, if anything. That
    is the run's data, as a view's 500 is: only a failure to load is the rig's."""
    producer = _function_of_the_app(function)
    _open_publishing_connection()
    published: list[str] = []

    def on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
        published.append(str((headers or {}).get("id", "")))
        client = control()
        if client is not None:  # kept at once: a producer killed later still published it
            client.rpush(published_key(task_id), published[-1])

    after_task_publish.connect(on_publish, weak=False)
    before_task_publish.connect(lambda **_: checkpoint(BEFORE_PUBLISH), weak=False)
    set_current(Execution(task_id, 0, PRODUCER))
    try:
        producer(key, task_id, json.loads(kwargs))
        raised = ""
    except Exception as error:  # noqa: BLE001 - what the user's code raised is the answer
        raised = one_line(error)
    return {"published": published, "raised": raised}


def beat(name: str, schedule: str, slots: str) -> None:
    """Run the app's beat (rig.beat) on the rig's services, Django set up."""
    from rig import beat as rig_beat

    _exit_with_the_rig()
    app = load_app()
    if uses_django():
        import django as django_module

        django_module.setup()
    app.loader.import_default_modules()
    rig_beat.run(app, name, schedule, int(slots))


def _exit_with_the_rig() -> None:
    """A beat outlives no rig: once the controller that started it is gone (this
    process handed to another parent), it exits too, whatever it was doing."""
    rig = os.getppid()

    def watch() -> None:
        while os.getppid() == rig:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="rig-watch", daemon=True).start()


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    # The answer is the last line, marked: a user's app may print as it loads.
    if command == "probe":
        print(contract.MARK + json.dumps(probe()))
    elif command == "manage":
        manage(rest)
    elif command == "effects":
        print(contract.MARK + json.dumps(effects(rest[0])))
    elif command == "produce":
        print(contract.MARK + json.dumps(produce(*rest)))
    elif command == "beat":
        beat(*rest)
    else:
        raise SystemExit(
            "usage: python -m rig.agent probe | manage ARGS... | effects MODULE:FN "
            "| produce MODULE:FN KEY TASK_ID KWARGS | beat NAME SCHEDULE_FILE SLOTS"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
else:
    # Imported by `celery -A rig.agent`: the user's app is this module's app,
    # checked again once the worker has read its command line, before it connects.
    app = load_app() if os.environ.get(contract.APP) else None
    if app is not None:
        worker_init.connect(lambda **_: check_isolation(app), weak=False)
        worker_ready.connect(lambda sender, **_: announce_ready(sender.hostname), weak=False)
