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


def test_a_docker_start_sweeps_only_the_interrupted_runs_under_its_own_runs_folder() -> None:
    from rig.backends.docker_engine import OWNER_LABEL, RUNS_LABEL, DockerEngine
    from rig.backends.run_dir import RUNS_DIR

    gone = str(_a_pid_no_process_has())
    ours = {OWNER_LABEL: gone, RUNS_LABEL: str(RUNS_DIR)}
    assert DockerEngine._interrupted(ours)
    assert DockerEngine._interrupted({OWNER_LABEL: gone})  # labelled by an older rig
    assert not DockerEngine._interrupted({**ours, RUNS_LABEL: "/elsewhere/celery-rig"})
    assert not DockerEngine._interrupted({**ours, OWNER_LABEL: "1"})  # its owner lives


def _a_pid_no_process_has() -> int:
    limit = int(Path("/proc/sys/kernel/pid_max").read_text())
    return next(pid for pid in range(limit - 1, 1, -1) if not Path(f"/proc/{pid}").exists())
