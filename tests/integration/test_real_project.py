"""A project as a template generates it (examples/templated), installed from the
built wheel in a fresh virtualenv per supported Celery, with a developer's
Redis and PostgreSQL standing where its settings point: the rig runs its tasks
on its own services and never touches theirs.

What "untouched" means here, measured on the real servers: the task queued
in the developer Redis is still queued, no result key appeared, and neither
server received a single connection during the rig's run (Redis'
total_connections_received, PostgreSQL's log_connections lines).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
import tenacity
from celery import Celery

from rig.backends.base import free_port
from rig.backends.postgres_node import LocalPostgres, binaries
from rig.backends.run_dir import RUNS_DIR
from tests.conftest import _docker_or_skip
from tests.helpers import ROOT, rig

PROJECT = ROOT / "examples" / "templated"
# The package declares celery>=5.4: each minor it accepts, at its newest patch.
CELERY_VERSIONS = ("5.4.0", "5.5.3", "5.6.3", "5.7.0")
PINNED = "5.6.3"  # the project's own requirements.txt
TASK = "orders.tasks.charge"
PAYMENTS = "SELECT order_id, count(*) FROM orders_payment GROUP BY order_id"
VENVS = ROOT / "build" / "celery-venvs"
INSTALL_S = 600
RUN_S = 300


def python_313() -> str:
    """The project's interpreter: Python 3.13 (pyenv's here), as a Django 6 project runs."""
    # pyenv's shims answer for versions that are not selected: ask for the real file.
    pyenv = sorted(Path("/root/.pyenv/versions").glob("3.13*/bin/python3.13"))
    found = str(pyenv[-1]) if pyenv else shutil.which("python3.13")
    if found is None:
        pytest.fail("no Python 3.13 on this machine: the template-shaped project runs on it")
    return found


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=INSTALL_S,
        env={**os.environ, "TMPDIR": str(build)},
    )
    for leftover in ROOT.glob("*.egg-info"):
        shutil.rmtree(leftover)
    return next(out.glob("*.whl"))


def venv(celery: str, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel, the project's requirements and this Celery."""
    path = VENVS / f"celery-{celery}"
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([python_313(), "-m", "venv", str(path)], check=True, timeout=INSTALL_S)
    requirements = [
        line
        for line in (PROJECT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "celery"))
    ]
    # kombu of the same minor, as pip resolves for a user who pinned Celery long ago
    # (the newest kombu wants a newer redis-py than an old Celery's extra allows).
    minor = celery.rsplit(".", 1)[0]
    pins = [f"celery[redis]=={celery}", f"kombu=={minor}.*", "packaging", _pin("pytest")]
    subprocess.run(
        [str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        + [str(wheel), *requirements, *pins],
        check=True,
        timeout=INSTALL_S,
    )
    return path


def _pin(package: str) -> str:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return next(line for line in lines if line.startswith(f"{package}=="))


@dataclass
class Developer:
    """A developer's own Redis and PostgreSQL, with a real task queued in the Redis."""

    redis_url: str
    database_url: str
    client: redis.Redis
    postgres_log: Path

    def snapshot(self) -> tuple[int, int, int, int]:
        """(connections Redis received, tasks queued, result keys, PostgreSQL connections)."""
        stats = self.client.info("stats")
        results = len(self.client.keys("celery-task-meta-*"))
        log = self.postgres_log.read_text(errors="replace")
        return (
            int(stats["total_connections_received"]),
            int(self.client.llen("celery")),
            results,
            log.count("connection received"),
        )


@contextmanager
def own_servers() -> Iterator[tuple[Path, Callable[..., subprocess.Popen[bytes]], Path]]:
    """A directory for servers standing outside the rig, a spawn function and
    PostgreSQL's bin directory; every process spawned is killed on the way out."""
    # Not under pytest's 0700 directory: as root, PostgreSQL runs as `postgres`.
    here = Path(tempfile.mkdtemp(prefix="not-the-rigs-", dir=RUNS_DIR.parent))
    here.chmod(0o755)
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (here / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        processes.append(process)
        return process

    bin_dir = binaries()
    if bin_dir is None:
        pytest.fail("no PostgreSQL installed: run `make setup`")
    try:
        yield here, spawn, bin_dir
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, 9)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        shutil.rmtree(here, ignore_errors=True)


@pytest.fixture(scope="module")
def developer() -> Iterator[Developer]:
    with own_servers() as (here, spawn, bin_dir):
        port = free_port()
        spawn(
            "redis",
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            + ["--save", "", "--dir", str(here)],
            {},
        )
        postgres = LocalPostgres(here, spawn, bin_dir, {"log_connections": "on"})
        postgres.start()
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "rig"]
            + ["templated"],
            check=True,
            timeout=30,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        retry = tenacity.Retrying(stop=tenacity.stop_after_delay(10), wait=tenacity.wait_fixed(0.1))
        retry(client.ping)
        producer = Celery("developer", broker=url)  # a real task, as the project would queue it
        producer.send_task(TASK, kwargs={"order_id": "developer-order"})
        producer.close()
        yield Developer(
            url, postgres.url.replace("/postgres", "/templated"), client, here / "postgres.log"
        )
        client.close()


def project_copy(tmp_path: Path, developer: Developer) -> Path:
    """The project with its env file pointing at the developer's servers."""
    copy = tmp_path / "templated"
    shutil.copytree(PROJECT, copy)
    env_file = copy / ".envs" / ".test" / ".django"
    env_file.write_text(
        "DJANGO_SETTINGS_MODULE=config.settings.test\n"
        f"DATABASE_URL={developer.database_url}\n"
        f"REDIS_URL={developer.redis_url}\n"
        # Exported as a developer's shell would: Celery reads these before any setting.
        f"CELERY_BROKER_URL={developer.redis_url}\n"
        f"CELERY_RESULT_BACKEND={developer.redis_url}\n"
    )
    return copy


def celery_rig(environment: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(environment / "bin" / "celery-rig"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=RUN_S,
        env={**os.environ, "PATH": f"{environment / 'bin'}:{os.environ['PATH']}"},
    )


TARGET = (
    *("--app", "config.celery_app:app", "--env-file", ".envs/.test/.django", "--task", TASK),
    *("--kwargs", '{"order_id": "{key}"}', "--effects", PAYMENTS),
)


def run_two_charges(environment: Path, project: Path, backend: str, *extra: str) -> None:
    """Two charges, the first execution killed right after its commit, with early
    ack: the killed one is not redelivered, so the run does not wait on kombu's
    restore sweep (every 100 s before kombu 5.7, not tunable). Both charges must
    be in the rig's database: the rig's own services did the work."""
    out = project / "result.json"
    done = celery_rig(
        environment,
        project,
        *("run", *TARGET, *extra, "--tasks", "2", "--backend", backend, "--json", str(out)),
        *("--fault", "container", "--at", "after_commit", "--acks", "early"),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    result = json.loads(out.read_text())
    assert result["verdict"] == "observed", output
    counts = result["counts"]
    assert (counts["executions"], counts["missing_rows"], counts["duplicate_rows"]) == (2, 0, 0)
    assert result["faults"][0]["landed"], result["faults"]


def assert_untouched(developer: Developer, before: tuple[int, int, int, int], what: str) -> None:
    after = developer.snapshot()
    names = ("Redis connections", "queued tasks", "result keys", "PostgreSQL connections")
    changed = {name: (b, a) for name, b, a in zip(names, before, after, strict=True) if a != b}
    assert not changed, f"{what} touched the developer's services: {changed}"
    assert after[1] == 1, f"the developer's queued task is gone: {after}"


def _explore_and_plugin(environment: Path, project: Path, developer: Developer) -> None:
    """The other two ways in, on the project's own Celery: explore and the marker."""
    before = developer.snapshot()
    done = celery_rig(
        environment,
        project,
        *("explore", *TARGET, "--acks", "late", "--faults", "container"),
        *("--duration", "4", "--tasks", "8", "--seed", "3", "--no-shrink", "--backend", "local"),
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "duplicate" in done.stdout, done.stdout + done.stderr  # the property it checked
    assert_untouched(developer, before, "celery-rig explore")
    before = developer.snapshot()
    tests = subprocess.run(
        [str(environment / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=RUN_S,
        env={**os.environ, "RIG_BACKEND": "local"},
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout, tests.stdout
    assert_untouched(developer, before, "the project's own chaos test (the plugin)")


def rig_databases(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rig%'")
        return sorted(row[0] for row in rows.fetchall())


@pytest.mark.integration
@pytest.mark.parametrize("celery", CELERY_VERSIONS)
def test_a_run_on_each_supported_celery_leaves_the_developers_services_alone(
    celery: str, wheel: Path, developer: Developer, tmp_path: Path
) -> None:
    environment = venv(celery, wheel)
    version = subprocess.run(
        [str(environment / "bin" / "python"), "-c", "import celery; print(celery.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == celery
    project = project_copy(tmp_path, developer)
    before = developer.snapshot()
    run_two_charges(environment, project, "local")
    assert_untouched(developer, before, f"celery-rig run on Celery {celery}")
    if celery == PINNED:
        _explore_and_plugin(environment, project, developer)


@pytest.mark.integration
def test_the_project_runs_on_docker_from_the_wheel(
    wheel: Path, developer: Developer, tmp_path: Path
) -> None:
    """The same project on the Docker backend: its own Celery and django-environ
    in a layer over the rig's image (--requirements), its settings from the env
    file, its PostgreSQL-only migration on the rig's PostgreSQL container."""
    _docker_or_skip()
    environment = VENVS / f"celery-{PINNED}"
    if not (environment / "bin" / "celery-rig").exists():
        environment = venv(PINNED, wheel)
    project = project_copy(tmp_path, developer)
    before = developer.snapshot()
    run_two_charges(environment, project, "docker", "--requirements", "requirements.txt")
    assert_untouched(developer, before, "celery-rig run on Docker")


@pytest.mark.integration
def test_a_server_lent_with_rig_database_server_keeps_none_of_the_rigs_databases() -> None:
    """RIG_DATABASE_SERVER, never DATABASE_URL: the rig uses the lent server,
    drops what it created there at the end, and `clean` drops what an
    interrupted run left."""
    with own_servers() as (here, spawn, bin_dir):
        lent = LocalPostgres(here, spawn, bin_dir, {"log_connections": "on"})
        lent.start()
        environment = {"RIG_DATABASE_SERVER": lent.url, "PYTHONPATH": str(ROOT)}
        environment["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/the_projects"
        done = rig(
            "run",
            "late_ack_kill_after_commit_create",
            "--backend",
            "local",
            env=environment,
            timeout=RUN_S,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        log = (here / "postgres.log").read_text(errors="replace")
        assert "database=rig_" in log, "the run did not use the lent server"
        assert rig_databases(lent.url) == []
        with psycopg.connect(lent.url, autocommit=True) as admin:
            admin.execute("CREATE DATABASE rig_left_by_an_interrupted_run")
        cleaned = rig("clean", env=environment, timeout=RUN_S)
        assert "dropped rig_left_by_an_interrupted_run" in cleaned.stdout, cleaned.stdout
        assert rig_databases(lent.url) == []
