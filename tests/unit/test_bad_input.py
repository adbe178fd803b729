"""Bad input ends in one clear line and a non-zero exit, never a traceback.

Each case runs the real command line in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_clear_error, rig


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["run", "no_such_scenario"], ["unknown scenario", "early_ack_kill_before_write"]),
        (["run", "--workers", "0"], ["workers=0: must be at least 1"]),
        (["run", "--task-seconds", "-1"], ["task_seconds=-1.0: must be at least 0"]),
        (["run", "--visibility-timeout", "0.5"], ["visibility_timeout=0.5"]),
        (
            ["run", "--fault", "pool-child", "--pool", "solo"],
            ["fault=pool-child needs pool=prefork"],
        ),
        (["run", "--restart", "--fault", "none"], ["restart=true needs fault=container"]),
        (["run", "early_ack_kill_before_write", "--workers", "3"], ["fixes its own settings"]),
        (["chaos", "--only", "nope"], ["unknown scenario 'nope'", "known:"]),
        (["fairness", "--only", "eager-ack"], ["unknown fairness configuration", "early-ack"]),
        (["fairness", "--workers", "1"], ["workers=1: must be at least 2"]),
        (["fairness", "--short-seconds", "5"], ["short_seconds=5.0 must be below"]),
        (["soak", "--runs", "0"], ["--runs 0: must be at least 1"]),
        (["soak", "--only", "no_such_scenario"], ["unknown scenario 'no_such_scenario'"]),
        (["run", "--queue-type", "quorum"], ["transport=redis: queue_type: RabbitMQ's"]),
        (
            ["run", "--transport", "rabbitmq", "--delivery-limit", "2"],
            ["delivery_limit needs queue_type=quorum"],
        ),
        (["run", "early_ack_kill_before_write@kafka"], ["unknown transport 'kafka'"]),
        (
            ["run", "--app", "tests.plain_celery.app:app", "--allocate-mb", "64"],
            ["allocate_mb needs the built-in tasks"],
        ),
        (["run", "--fault", "blips", "--blips", "0"], ["blips=0: must be at least 1"]),
        (
            ["fairness", "--transport", "rabbitmq", "--only", "disable-prefetch"],
            ["disable-prefetch is Redis-only"],
        ),
    ],
)
def test_invalid_values_and_impossible_combinations(args: list[str], needles: list[str]) -> None:
    assert_clear_error(rig(*args), 2, "error:", *needles)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--acks", "sometimes"], "invalid choice: 'sometimes'"),
        (["run", "--workers", "two"], "invalid int value: 'two'"),
        (["run", "--backend", "kubernetes"], "invalid choice: 'kubernetes'"),
        (["explode"], "invalid choice: 'explode'"),
        (["chaos", "--jobs", "0"], "expected a whole number of at least 1, not '0'"),
    ],
)
def test_malformed_flags_get_the_usage_line(args: list[str], needle: str) -> None:
    assert_clear_error(rig(*args), 2, "usage:", needle)


def test_a_scenario_file_that_does_not_parse_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('description = "x"\n[settings\nacks = "late"\n')
    result = rig("list", env={"RIG_CATALOG_DIR": str(tmp_path)})
    assert_clear_error(result, 2, "broken.toml", "line 2")


def test_a_scenario_file_with_a_typo_in_a_setting_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "typo.toml").write_text(
        'description = "x"\n[settings]\nack = "late"\n[expect]\nexecutions = 1\n'
    )
    result = rig("run", "typo", env={"RIG_CATALOG_DIR": str(tmp_path)})
    assert_clear_error(result, 2, "typo.toml", "unknown setting(s) ack")


def test_no_docker_engine_says_how_to_fix_it() -> None:
    result = rig(
        "run",
        "early_ack_kill_before_write",
        "--backend",
        "docker",
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert_clear_error(result, 3, "no Docker engine answers", "--backend local")


def test_without_an_engine_auto_falls_back_to_local_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rig.backends.select import decide, engine_answers

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    name, reason = decide("auto", engine_answers())
    assert name == "local"
    assert "no Docker engine answers" in reason


def test_make_up_refuses_a_port_in_use(busy_port: int) -> None:
    result = subprocess.run(
        ["bash", "scripts/up.sh"],
        cwd=ROOT,
        env={**os.environ, "REDIS_PORT": str(busy_port), "COMPOSE_PROJECT": "celery-rig-portcheck"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_clear_error(result, 3, f"port {busy_port} on 127.0.0.1 is in use", "REDIS_PORT")
