"""What a run points at: the built-in exam_app, or a user's own Django + Celery
project, unchanged.

`TargetSettings` are the target's flags (composed into rig.settings.Settings,
so they are flags, scenario keys and marker arguments like every other
setting). `resolve` checks a target once, in a subprocess that imports the
user's app the way a worker will (rig.agent probe), and gives a `Target`: the
task's full name, how to build each call, where the effects come from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rig import contract
from rig.backends.base import last_line
from rig.checkpoints import AUTOMATIC, WITHOUT_DJANGO
from rig.errors import BadInput, EnvironmentProblem
from rig.schema import setting

KEY = "{key}"  # replaced by each task's business key, key-0, key-1, ...
# The built-in tasks (exam_app.users.tasks), by the short names --task takes,
# and the table each one writes its row to.
BUILTIN_APP = "exam_app"
BUILTIN_TASKS = {
    "create": ("exam_app.users.tasks.create_record", "users_naiverecord"),
    "get_or_create": ("exam_app.users.tasks.get_or_create_record", "users_idempotentrecord"),
    "retry_then_create": ("exam_app.users.tasks.retry_then_create", "users_naiverecord"),
    "autoretry_then_create": (
        "exam_app.users.tasks.autoretry_then_create",
        "users_naiverecord",
    ),
    "fulfil_order": ("exam_app.users.tasks.fulfil_order", "users_naiverecord"),
    "charge": ("exam_app.users.tasks.charge", "users_naiverecord"),
    "charge_with_key": ("exam_app.users.tasks.charge_with_key", "users_naiverecord"),
    "send_receipt": ("exam_app.users.tasks.send_receipt", "users_naiverecord"),
    "digest": ("exam_app.users.tasks.send_digest", ""),  # beat's: writes no row
    "get_or_create_unconstrained": (
        "exam_app.users.tasks.get_or_create_unconstrained",
        "users_unconstrainedrecord",
    ),
}
RIG_ROOT = Path(__file__).resolve().parents[1]  # where `rig` (and exam_app) import from


def python_path() -> str:
    """PYTHONPATH for a process of the rig's: the rig first, then the user's own."""
    return os.pathsep.join(filter(None, [str(RIG_ROOT), os.environ.get("PYTHONPATH")]))


@dataclass(frozen=True)
class TargetSettings:
    """The project under test; all empty: the built-in exam_app."""

    app: str = setting(
        "",
        "your Celery app as `celery -A` takes it, MODULE[:ATTR] (default: the built-in "
        f"exam_app, whose --task is one of {', '.join(BUILTIN_TASKS)})",
    )
    project_dir: str = setting(
        "", "your project's root, put first on the import path (default: the current directory)"
    )
    kwargs: str = setting(
        "", f"the task's keyword arguments as JSON; \"{KEY}\" becomes each task's business key"
    )
    args: str = setting("", f'the task\'s positional arguments as JSON; "{KEY}" as in --kwargs')
    fixture: tuple[str, ...] = setting((), "a Django fixture loaded after migrate")
    effects: str = setting(
        "",
        "SQL, or MODULE:FUNCTION, giving (business key, count) rows of the task's effect; "
        "duplicate and missing rows are counted against the keys sent",
    )
    requirements: str = setting(
        "",
        "a requirements file of packages your project needs beyond Django and Celery: "
        "docker installs them into a cached layer over the rig's image; local uses "
        "the current virtualenv",
    )

    env: tuple[str, ...] = setting(
        (),
        "NAME=VALUE, a variable your settings need to load, for the probe, the "
        "workers and the effects; the rig's services still replace what it names",
    )
    env_file: str = setting(
        "", "a dotenv file of NAME=VALUE lines, as --env (a template keeps them under .envs/)"
    )

    def validate_target(self, task: str, tasks: int) -> None:
        """What can be told without importing anything; `tasks` is how many calls
        the rig builds from --kwargs and --args (none when beat sends the work)."""
        if not self.app:
            given = [
                name
                for name in (
                    *("project_dir", "kwargs", "args", "fixture", "effects", "requirements"),
                    *("env", "env_file"),
                )
                if getattr(self, name)
            ]
            if given:
                raise BadInput(f"{', '.join(given)} need(s) --app: the built-in tasks take no call")
            if task not in BUILTIN_TASKS:
                raise BadInput(
                    f"task={task!r}: the built-in exam_app has {', '.join(BUILTIN_TASKS)} "
                    "(give --app to test your own)"
                )
            return
        for assignment in self.env:
            _assignment(assignment, "env")
        call = [_json(self.kwargs, "kwargs", dict), _json(self.args, "args", list)]
        if tasks > 1 and KEY not in json.dumps(call):
            raise BadInput(
                f'tasks={tasks} needs "{KEY}" in --kwargs or --args: each task needs its own '
                "business key, or every call would be the same"
            )


def pin_project_dir(values: dict[str, Any]) -> dict[str, Any]:
    """With --app and no --project-dir, the current directory, written out: a
    replay then works from anywhere."""
    if values.get("app") and not values.get("project_dir"):
        return values | {"project_dir": os.getcwd()}
    return values


VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _assignment(text: str, where: str) -> tuple[str, str]:
    """NAME=VALUE, as a shell or a dotenv file writes it (an optional `export `,
    the value's surrounding quotes taken off)."""
    name, equals, value = text.removeprefix("export ").partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not VARIABLE.match(name):
        raise BadInput(f"{where}: expected NAME=VALUE, got {text.strip()!r}")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return name, value


def user_environment(env: tuple[str, ...], env_file: str, project_dir: str) -> dict[str, str]:
    """--env-file's variables, then each --env (which wins); a relative file is
    the project's."""
    variables: dict[str, str] = {}
    if env_file:
        path = Path(project_dir, env_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as error:
            raise BadInput(f"env_file {env_file}: {error.strerror or error}") from None
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                name, value = _assignment(line, f"env_file {env_file} line {number}")
                variables[name] = value
    return variables | dict(_assignment(text, "env") for text in env)


def _json(text: str, name: str, kind: type) -> Any:
    if not text:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"{name}: not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, kind):
        raise BadInput(f"{name}: expected a JSON {'object' if kind is dict else 'array'}")
    return value


def _with_key(value: Any, key: str) -> Any:
    if isinstance(value, str):
        return value.replace(KEY, key)
    if isinstance(value, list):
        return [_with_key(item, key) for item in value]
    if isinstance(value, dict):
        return {name: _with_key(item, key) for name, item in value.items()}
    return value


@dataclass(frozen=True)
class Target:
    """A checked target: what the workers load and how each task is called."""

    app: str  # MODULE[:ATTR]
    project_dir: str  # "" for the built-in exam_app (importable beside rig, or in the image)
    task_name: str
    kwargs: dict[str, Any]
    args: list[Any]
    effects: str  # SQL or MODULE:FUNCTION, or ""
    fixtures: tuple[str, ...] = ()
    requirements: str = ""  # an absolute path, or ""
    variables: tuple[tuple[str, str], ...] = ()  # --env and --env-file, for the app to load
    django: bool = True
    notes: tuple[str, ...] = field(default=())
    lane: int = 0  # scenarios in parallel: each lane has a database of its own

    @property
    def database(self) -> str:
        """The target's own database on the rig's server: one per project and lane."""
        digest = hashlib.sha1(f"{self.app}\0{self.project_dir}".encode()).hexdigest()[:10]
        return f"rig_{digest}" + (f"_l{self.lane}" if self.lane else "")

    def call(self, index: int, part: str = "") -> tuple[str, list[Any], dict[str, Any]]:
        """The business key of the index-th task (of a part of it: a chain's step,
        a chord's header), and its arguments."""
        key = f"key-{index}" + (f".{part}" if part else "")
        return key, _with_key(self.args, key), _with_key(self.kwargs, key)

    def environment(self) -> dict[str, str]:
        """What a worker's agent (and a probe) needs to load the app."""
        variables = dict(self.variables)
        # The agent drops an inherited DJANGO_SETTINGS_MODULE; one given with --env stands.
        given = {contract.GIVEN_SETTINGS: variables.pop("DJANGO_SETTINGS_MODULE", "")}
        return variables | given | {contract.APP: self.app, contract.PROJECT_DIR: self.project_dir}


def resolve(settings: Any) -> Target:
    """The target of these settings (rig.settings.Settings), checked."""
    if not settings.app:
        task_name, table = BUILTIN_TASKS[settings.task]
        kwargs = {"key": KEY, "seconds": settings.task_seconds} | settings.task_kwargs()
        effects = f"SELECT business_key, count(*) FROM {table} GROUP BY business_key"
        return Target(BUILTIN_APP, "", task_name, kwargs, [], effects if table else "")
    project_dir = str(Path(settings.project_dir or os.getcwd()).resolve())
    if not Path(project_dir).is_dir():
        raise BadInput(f"project_dir {settings.project_dir}: no such directory")
    variables = tuple(user_environment(settings.env, settings.env_file, project_dir).items())
    found = probe(settings.app, project_dir, variables)
    if settings.task not in found["tasks"]:
        raise BadInput(
            f"task {settings.task!r} is not registered in {settings.app}; registered: "
            + (", ".join(found["tasks"]) or "none")
        )
    notes: tuple[str, ...] = ()
    if not found["django"]:
        notes = (
            f"{settings.app} is not a Django project: checkpoints are task_start, task_end and "
            "any you name with rig.checkpoint(); no database, writes or fixtures",
        )
        if settings.at in AUTOMATIC and settings.at not in WITHOUT_DJANGO:
            if settings.fault != "none":
                raise BadInput(f"at={settings.at!r} needs a Django project; {notes[0]}")
        if settings.fixture:
            raise BadInput(f"fixture needs a Django project; {notes[0]}")
    return Target(
        app=settings.app,
        project_dir=project_dir,
        task_name=settings.task,
        kwargs=_json(settings.kwargs, "kwargs", dict),
        args=_json(settings.args, "args", list),
        effects=settings.effects,
        fixtures=tuple(str(Path(project_dir, f)) for f in settings.fixture),
        requirements=str(Path(project_dir, settings.requirements)) if settings.requirements else "",
        variables=variables,
        django=found["django"],
        notes=notes,
    )


@cache
def probe(app: str, project_dir: str, variables: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Import the user's app in a subprocess, as a worker will: its tasks, and
    whether it is a Django project. Any failure is one line."""
    target = Target(app, project_dir, "", {}, [], "", variables=variables)
    done = agent_command(["probe"], target, "")
    return answer(done, f"{app}: probe")


def answer(done: subprocess.CompletedProcess[str], what: str) -> Any:
    """The marked JSON line of rig.agent's output (the app may print as it loads)."""
    found = marked_answer(done.stdout)
    if found is None:
        raise BadInput(f"{what}: no answer in its output: {done.stdout.strip()[-200:]!r}")
    return found


def marked_answer(output: str) -> Any | None:
    """The JSON of the last line rig.agent marked (contract.MARK), or None."""
    for line in reversed(output.splitlines()):
        if line.startswith(contract.MARK):
            return json.loads(line[len(contract.MARK) :])
    return None


def agent_command(
    arguments: list[str], target: Target, database_url: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m rig.agent ...` for this target, on the rig's database; a failure
    raises with the last line of its error (an import error, a failed migration)."""
    environment = {
        **os.environ,
        **target.environment(),
        contract.DATABASE_URL: database_url or "sqlite:///:memory:",
        contract.BROKER_URL: "memory://",
        "PYTHONPATH": python_path(),
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)  # the app's own module names its settings
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rig.agent", *arguments],
            cwd=target.project_dir or RIG_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(
            f"{target.app}: `{arguments[0]}` took over {timeout_s:.0f} s"
        ) from None
    if done.returncode != 0:
        error = last_line(done.stderr)
        raise BadInput(f"{target.app}: {arguments[0]} failed: {error}{_missing_variable(error)}")
    return done


def start_agent(
    arguments: list[str], target: Target, urls: dict[str, str], log: Path, session: bool = False
) -> subprocess.Popen[bytes]:
    """`python -m rig.agent ...` in the background, on the rig's services (`urls`:
    rig.contract names to URLs as this machine reaches them), its output to `log`;
    `session`: in a session of its own, so a leftover's cleanup can kill its group."""
    environment = {**os.environ, **target.environment(), **urls, "PYTHONPATH": python_path()}
    environment.pop("DJANGO_SETTINGS_MODULE", None)  # the app's own module names its settings
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "rig.agent", *arguments],
            cwd=target.project_dir or RIG_ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=session,
        )


def _missing_variable(error: str) -> str:
    """A hint for settings that read a variable nobody gave (django-environ's
    "Set the X environment variable", os.environ's KeyError)."""
    match = re.search(r"Set the (\w+) environment variable|KeyError: '(\w+)'", error)
    if match is None:
        return ""
    name = match[1] or match[2]
    return f" (give it with --env {name}=VALUE or --env-file PATH)"
