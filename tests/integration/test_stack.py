"""The reproduction stack from docker-compose.yml, brought up with the
compose tool this machine has (v2, else v1), on free ports under its own
project name: a task runs through a real worker into PostgreSQL, Flower
asks for its basic auth, `make reproduce` shows the seed's difference, and
`down -v` leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import psycopg
import pytest
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from tests.helpers import ROOT

PROJECT = f"celery-rig-test-{os.getpid()}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def compose(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", 'source scripts/compose.sh && compose "$@"', "compose", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def project_objects() -> list[str]:
    import docker

    client = docker.from_env()
    label = {"label": f"com.docker.compose.project={PROJECT}"}
    return (
        [c.name for c in client.containers.list(all=True, filters=label, ignore_removed=True)]
        + [n.name for n in client.networks.list(filters=label)]
        + [v.name for v in client.volumes.list(filters=label)]
    )


@pytest.fixture(scope="module")
def stack(docker_runner: object) -> Iterator[dict[str, str]]:
    ports = {
        "REDIS_PORT": free_port(),
        "POSTGRES_PORT": free_port(),
        "WEB_PORT": free_port(),
        "FLOWER_PORT": free_port(),
    }
    env = {**os.environ, "COMPOSE_PROJECT": PROJECT, **{k: str(v) for k, v in ports.items()}}
    try:
        up = subprocess.run(
            ["bash", "scripts/up.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert up.returncode == 0, up.stdout + up.stderr + compose(env, "logs", "--tail=50").stdout
        assert "all healthy" in up.stdout
        yield env
    finally:
        down = compose(env, "down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
        assert project_objects() == [], "compose down -v left objects behind"


def _wait_for_ledger_row(database_url: str, key: str) -> tuple | None:
    def read() -> tuple | None:
        with psycopg.connect(database_url) as connection:
            return connection.execute(
                "SELECT hostname, attempt, finished_at IS NOT NULL FROM users_attempt "
                "WHERE business_key = %s",
                (key,),
            ).fetchone()

    return retry(
        stop=stop_after_delay(60),
        wait=wait_fixed(0.3),
        retry=retry_if_result(lambda row: row is None or not row[2]),
        retry_error_callback=lambda state: state.outcome and state.outcome.result(),
    )(read)()


@pytest.mark.docker
@pytest.mark.integration
def test_a_task_runs_through_a_real_worker_into_postgresql(stack: dict[str, str]) -> None:
    from rig.events import controller_app

    app = controller_app(f"redis://127.0.0.1:{stack['REDIS_PORT']}/0")
    key = f"stack-test-{os.getpid()}"
    app.send_task("exam_app.users.tasks.late_acknowledge", kwargs={"seconds": 0.1, "key": key})
    database = f"postgresql://exam:exam@127.0.0.1:{stack['POSTGRES_PORT']}/exam"
    row = _wait_for_ledger_row(database, key)
    assert row is not None and row[2], f"no finished ledger row for {key} within 60 s: {row}"
    hostname, attempt, _ = row
    assert hostname.startswith("celery@worker") and attempt == 1


@pytest.mark.docker
@pytest.mark.integration
def test_flower_answers_on_loopback_only_with_its_basic_auth(stack: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{stack['FLOWER_PORT']}/api/workers"
    with pytest.raises(HTTPError) as refused:
        urlopen(url, timeout=10)
    assert refused.value.code == 401
    request = Request(url, headers={"Authorization": "Basic ZGVidWc6ZGVidWc="})  # debug:debug
    with urlopen(request, timeout=10) as response:
        assert response.status == 200
    import docker

    for container in docker.from_env().containers.list(
        filters={"label": f"com.docker.compose.project={PROJECT}"}
    ):
        for bindings in (container.ports or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), container.name


@pytest.mark.docker
@pytest.mark.integration
def test_reproduce_shows_early_ack_tasks_waiting_in_received_and_late_ack_none(
    stack: dict[str, str], tmp_path: Path
) -> None:
    figures_path = tmp_path / "reproduce.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.reproduce", "--json", str(figures_path)],
        cwd=ROOT,
        env=stack,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(figures_path.read_text())["tasks"]
    early, late = figures["early_acknowledge"], figures["late_acknowledge"]
    assert early["incomplete"] == 0 and late["incomplete"] == 0
    assert early["sat_in_received"] >= 1 and early["max_held_by_one_worker"] == 2
    assert late["sat_in_received"] == 0 and late["max_held_by_one_worker"] == 1
    assert late["idle_worker_meanwhile_s"] == 0.0
