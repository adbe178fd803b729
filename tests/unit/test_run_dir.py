"""A local run's directory leaves nothing of ours behind, not even the folder
that holds the runs."""

from __future__ import annotations

from pathlib import Path

from rig.backends import run_dir
from rig.backends.run_dir import RunDirectory, remove_stale_runs


def test_the_last_run_removed_takes_the_runs_folder_with_it(tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "celery-rig"
    monkeypatch.setattr(run_dir, "RUNS_DIR", runs)
    first, second = RunDirectory("run-1"), RunDirectory("run-2")
    first.create()
    second.create()
    first.remove()
    assert runs.exists() and not first.dir.exists()  # the other run still lives there
    second.remove()
    assert not runs.exists()


def test_cleaning_stale_runs_leaves_no_empty_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / "celery-rig"
    (runs / "run-gone").mkdir(parents=True)
    (runs / "run-gone" / "owner").write_text("0")  # no owner: an interrupted run
    assert remove_stale_runs(runs) == ["run-gone"]
    assert not runs.exists()
