"""Any Django + Celery project, unchanged: examples/shop run through the rig on
both backends, its bad inputs, the pytest plugin's marker checks, and a project
that is not Django."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.history import SENT
from rig.runner import Runner
from rig.settings import Settings, make_settings
from tests.helpers import ROOT, Listener, assert_clear_error, listening, rig

SHOP = ROOT / "examples" / "shop"
SHOP_APP = ["--app", "shop.celery:app", "--project-dir", str(SHOP)]
ORDER_KEY = '{"order_id": "{key}"}'
EFFECTS = "SELECT order_id, count(*) FROM {table} GROUP BY order_id"


def plain_settings(task: str, **settings: object) -> Settings:
    """A run of tests/plain_celery (no Django) with these settings."""
    return make_settings(
        app="tests.plain_celery.app:app", project_dir=str(ROOT), task=task, **settings
    )


def shop_settings(task: str, table: str, **settings: object) -> Settings:
    return make_settings(
        app="shop.celery:app",
        project_dir=str(SHOP),
        task=f"payments.tasks.{task}",
        kwargs=ORDER_KEY,
        tasks=2,
        effects=EFFECTS.format(table=table),
        **settings,
    )


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["docker", "local"], indirect=True)
def test_a_kill_after_commit_duplicates_the_naive_charge_and_not_the_idempotent_one(
    runner: Runner,
) -> None:
    kill = {"fault": "container", "at": "after_commit", "acks": "late"}
    naive = runner.run("shop-charge", shop_settings("charge", "payments_payment", **kill), None)
    assert naive.outcome.verdict == "observed", naive.outcome.reasons
    assert naive.outcome.counts.duplicated_work >= 1, naive.outcome.counts
    assert naive.outcome.counts.duplicate_rows >= 1, naive.outcome.counts
    # The app's own setting (CELERY_TASK_ACKS_LATE) and the override agree here;
    # what the workers really ran with is reported per task.
    assert naive.as_json()["effective"]["payments.tasks.charge"]["acks_late"] is True

    once = runner.run(
        "shop-charge-once", shop_settings("charge_once", "payments_receipt", **kill), None
    )
    assert once.outcome.verdict == "observed", once.outcome.reasons
    counts = once.outcome.counts
    assert counts.executions >= 3 and counts.redelivered >= 1, counts
    assert counts.duplicate_rows == 0 and counts.missing_rows == 0, counts


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["local"], indirect=True)
def test_the_apps_own_acks_stand_when_not_given(runner: Runner) -> None:
    """shop's settings say CELERY_TASK_ACKS_LATE = True; with no --acks the kill
    after the commit repeats the charge, and the result says acks_late was on."""
    settings = shop_settings("charge", "payments_payment", fault="container", at="after_commit")
    result = runner.run("shop-own-acks", settings, None)
    assert result.as_json()["effective"]["payments.tasks.charge"]["acks_late"] is True
    assert result.outcome.counts.redelivered >= 1, result.outcome.counts


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["local"], indirect=True)
def test_a_project_that_is_not_django_runs_with_task_checkpoints(runner: Runner) -> None:
    kill = {"fault": "container", "at": "task_end", "acks": "late"}
    settings = plain_settings("plain.add", args="[1, 2]", **kill)
    result = runner.run("plain", settings, None)
    assert result.outcome.verdict == "observed", result.outcome.reasons
    assert result.outcome.counts.executions == 2 and result.outcome.counts.completed == 1
    notes = [e.data["text"] for e in result.history.events("note")]
    assert any("not a Django project" in note for note in notes), notes


@pytest.mark.integration
def test_a_point_named_in_the_users_code_takes_a_fault_and_their_broker_env_is_ignored() -> None:
    """`from rig import checkpoint; checkpoint("halfway")` in the task, --at halfway;
    a CELERY_BROKER_URL exported in the user's shell points nowhere the rig goes."""
    result = rig(
        "run",
        "--app",
        "tests.plain_celery.app:app",
        "--project-dir",
        str(ROOT),
        "--task",
        "plain.halves",
        "--args",
        "[8]",
        "--fault",
        "container",
        "--at",
        "halfway",
        "--acks",
        "late",
        "--backend",
        "local",
        env={"CELERY_BROKER_URL": "redis://broker.invalid:6379/0"},
    )
    output = (result.stdout + result.stderr).replace("\xa0", " ")  # counts keep their number
    assert result.returncode == 0, output
    assert "executions 2, completed 1, redelivered 1" in output, output
    assert "hit by container at halfway" in output, output


@pytest.mark.integration
def test_a_failing_effects_query_is_an_error_verdict_with_its_message() -> None:
    result = rig(
        "run",
        *SHOP_APP,
        "--task",
        "payments.tasks.charge",
        "--kwargs",
        ORDER_KEY,
        "--effects",
        "SELECT nothing FROM nowhere",
        "--backend",
        "local",
    )
    assert_clear_error(result, 1, "error", "effects query failed", "nowhere")


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["local"], indirect=True)
def test_fixtures_load_before_every_run_and_effects_can_be_a_function(runner: Runner) -> None:
    """The fixture holds an earlier payment for key-0; with no fault, one charge
    for key-0 makes it two rows, counted by the project's own effects function."""
    settings = make_settings(
        app="shop.celery:app",
        project_dir=str(SHOP),
        task="payments.tasks.charge",
        kwargs=ORDER_KEY,
        fixture=("payments/fixtures/earlier_payment.json",),
        effects="payments.effects:payments_per_order",
    )
    for attempt in ("first", "second"):  # reset and reloaded: the same counts again
        result = runner.run(f"shop-fixture-{attempt}", settings, None)
        assert result.outcome.verdict == "observed", result.outcome.reasons
        counts = result.outcome.counts
        assert (counts.completed, counts.duplicate_rows, counts.missing_rows) == (1, 1, 0), counts


@pytest.mark.integration
@pytest.mark.docker
@pytest.mark.parametrize("runner", ["docker"], indirect=True)
def test_extra_requirements_reach_docker_workers_through_a_cached_layer(runner: Runner) -> None:
    settings = plain_settings(
        "plain.dump", args="[7]", requirements="tests/plain_celery/requirements.txt"
    )
    result = runner.run("plain-requirements", settings, None)
    assert result.outcome.verdict == "observed", result.outcome.reasons
    assert (result.outcome.counts.completed, result.outcome.counts.failed) == (1, 0)


@pytest.mark.integration
@pytest.mark.docker
@pytest.mark.parametrize("runner", ["docker"], indirect=True)
def test_httpx_calls_are_answered_by_the_sink_in_docker_workers(runner: Runner) -> None:
    """httpx (installed from the project's requirements) is answered like requests:
    killed after the provider's answer, the task calls again and is counted twice."""
    settings = plain_settings(
        "plain.post_httpx",
        kwargs=json.dumps({"url": "https://api.payments.example/v1/charges"}),
        requirements="tests/plain_celery/requirements.txt",
        fault="container",
        at="after_http",
        acks="late",
    )
    result = runner.run("plain-httpx", settings, None)
    assert result.outcome.verdict == "observed", result.outcome.reasons
    counts = result.outcome.counts
    assert (counts.executions, counts.completed) == (2, 1), counts
    assert (counts.external_calls, counts.duplicate_external_effects) == (2, 1), counts


@pytest.mark.integration
def test_a_projects_own_scenario_files_run_with_chaos(tmp_path: Path) -> None:
    done = rig(
        "chaos",
        "--catalog",
        str(SHOP / "chaos"),
        *SHOP_APP,
        "--backend",
        "local",
        "--reports",
        str(tmp_path),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "4 of 4 passed on local" in output, output  # each file on both transports
    assert "fairness" not in output  # the prefetch comparison is about exam_app


@pytest.mark.integration
def test_a_run_that_ends_unknown_keeps_its_workers_logs(tmp_path: Path) -> None:
    """The checkpoint plain.add never passes: no fault lands, the verdict is
    unknown, and the workers' logs outlive the run's folder."""
    result = subprocess.run(
        [sys.executable, "-m", "rig", "run", "--app", "tests.plain_celery.app:app"]
        + ["--project-dir", str(ROOT), "--task", "plain.add", "--args", "[1, 2]"]
        + ["--fault", "container", "--at", "halfway", "--backend", "local"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "unknown" in output, output
    kept = list(tmp_path.glob("reports/*/logs/matrix-w1-*.log"))
    assert kept, f"no worker log kept under {tmp_path}/reports:\n{output}"
    assert "celery@w1-" in kept[0].read_text(), kept[0].read_text()[-500:]
    assert f"kept: the workers' logs and the history in reports/{kept[0].parts[-3]}/" in output


outside = pytest.fixture(listening, name="outside")


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["local"], indirect=True)
def test_no_outbound_connection_leaves_a_worker(runner: Runner, outside: Listener) -> None:
    """A task's HTTP call to a real port is answered by the rig's sink and counted
    per execution (twice: killed after the answer, run again); a raw connection to
    it is refused and the run's error names it. The port never hears from either."""

    url = f"http://127.0.0.1:{outside.port}/v1/charges"
    kill = {"fault": "container", "at": "after_http", "acks": "late"}
    call = plain_settings("plain.post", kwargs=json.dumps({"url": url}), **kill)
    posted = runner.run("outbound-http", call, None)
    assert posted.outcome.verdict == "observed", posted.outcome.reasons
    counts = posted.outcome.counts
    assert (counts.executions, counts.completed) == (2, 1), counts
    assert (counts.external_calls, counts.duplicate_external_effects) == (2, 1), counts

    connect = plain_settings("plain.connect", kwargs=json.dumps({"port": outside.port}))
    raw = runner.run("outbound-raw", connect, None)
    assert raw.outcome.verdict == "error", raw.outcome
    assert f"tried to connect to 127.0.0.1:{outside.port}" in raw.outcome.reasons[0]
    assert outside.accepted == [], "a connection left a worker"


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["local"], indirect=True)
def test_a_projects_own_beat_schedule_runs_under_the_rig(runner: Runner) -> None:
    """tests/plain_celery's own beat_schedule (plain.add every second), run by the
    rig's beat on the rig's broker; killed right after a send and started again,
    it sends that slot again."""
    kill = {"fault": "sender-kill", "at": "after_beat_send"}
    beat = plain_settings("plain.add", workload="beat", tasks=2, **kill)
    result = runner.run("project-beat", beat, None)
    assert result.outcome.verdict == "observed", result.outcome.reasons
    counts = result.outcome.counts
    assert (counts.sent, counts.completed, counts.duplicate_scheduled_runs) == (3, 3, 1), counts
    sent = {event.data["task"] for event in result.history.events(SENT)}
    assert sent == {"plain.add"}, sent
