"""Any Django + Celery project, unchanged: examples/shop run through the rig on
both backends, its bad inputs, the pytest plugin's marker checks, and a project
that is not Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.agent import WRITE
from tests.helpers import ROOT, assert_clear_error, rig

SHOP = ROOT / "examples" / "shop"
SHOP_APP = ["--app", "shop.celery:app", "--project-dir", str(SHOP)]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--app", "no_such_module:app"], ["no_such_module", "ModuleNotFoundError"]),
        (
            ["--app", "tests.eager_django.app:app", "--task", "t"],
            ["sets Django up when it is imported"],
        ),
        ([*SHOP_APP, "--task", "payments.tasks.charge", "--project-dir", "/nowhere"], ["no such"]),
        (
            [
                *SHOP_APP,
                "--task",
                "payments.tasks.charge",
                "--fault",
                "oom",
                "--memory-limit-mb",
                "100",
                "--allocate-mb",
                "200",
            ],
            ["fault=oom needs the built-in tasks"],
        ),
        (["--effects", "SELECT 1"], ["need(s) --app"]),
        (
            [*SHOP_APP, "--task", "payments.tasks.refund"],
            ["not registered", "payments.tasks.charge"],
        ),
        ([*SHOP_APP, "--task", "payments.tasks.charge", "--tasks", "2"], ['needs "{key}"']),
        (
            [*SHOP_APP, "--task", "payments.tasks.charge", "--kwargs", "{order"],
            ["kwargs: not JSON"],
        ),
        (
            ["--app", "tests.plain_celery.app:app", "--task", "plain.add", "--fault", "container"],
            ["at='after_commit' needs a Django project"],
        ),
        (["--kwargs", "{}"], ["need(s) --app"]),
        (
            ["--app", "tests.cached_backend.app:app", "--task", "cached.add", "--fault", "none"],
            ["refusing to run", "result backend is redis://127.0.0.1:6399/1"],
        ),
        (
            ["--app", "tests.plain_celery.app:app", "--env", "NO_EQUALS"],
            ["env: expected NAME=VALUE"],
        ),
        (
            ["--app", "tests.needs_env.app:app", "--task", "needs_env.ping"],
            ["KeyError: 'SHOP_BROKER'", "give it with --env SHOP_BROKER=VALUE or --env-file PATH"],
        ),
        (
            ["--app", "tests.plain_celery.app:app", "--env-file", "/nowhere/.env"],
            ["env_file /nowhere/.env: No such file"],
        ),
        (["--at", "after_lunch"], ["at='after_lunch': expected one of task_start"]),
    ],
)
def test_bad_targets_are_one_line(args: list[str], needles: list[str]) -> None:
    assert_clear_error(rig("run", *args), 2, "error:", *needles)


def test_the_ledger_recognises_write_statements() -> None:
    def write(statement: str) -> tuple[str, str]:
        match = WRITE.match(statement)
        assert match is not None, statement
        return match[1], match[2]

    insert = write('INSERT INTO "payments_payment" ("order_id") VALUES (%s)')
    assert insert[1] == "payments_payment"
    assert write('UPDATE "users_naiverecord" SET x = 1')[0] == "UPDATE"
    assert write("DELETE FROM `t` WHERE 1")[1] == "t"
    assert WRITE.match('SELECT "x" FROM "payments_payment"') is None


def test_a_marker_typo_is_a_collection_error_naming_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_typo.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.celery_chaos(app='shop.celery:app', faultt='container')\n"
        "def test_x(celery_chaos):\n    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "rig.pytest_plugin", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "test_typo.py::test_x" in output and "faultt" in output, output


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (SHOP_APP, ["the project flags go with --catalog"]),
        (["--catalog", str(SHOP), *SHOP_APP], ["no scenario files"]),
        (["--catalog", str(SHOP / "nowhere")], ["no such directory"]),
    ],
)
def test_bad_catalogs_are_one_line(args: list[str], needles: list[str]) -> None:
    assert_clear_error(rig("chaos", *args), 2, "error:", *needles)
