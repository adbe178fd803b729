"""The local backend's fork server (rig.backends.forkserver), on real
processes: a forked worker runs as `python -m MODULE` would, in a session
of its own, with its run's environment, directory and log; its exit (or
death by a signal) comes back as Popen's returncode; and when the
controller is gone, the server takes its workers with it."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.backends.forkserver import ForkServer
from rig.backends.pids import wait_gone
from rig.backends.run_dir import RunDirectory
from rig.target import python_path
from rig.waiting import until_nothing_missing

PROBE = textwrap.dedent(
    """
    import os, sys, time
    print("argv", sys.argv[1:], "cwd", os.getcwd(), flush=True)
    print("env", os.environ.get("PROBE_VALUE"), "sid", os.getsid(0) == os.getpid(), flush=True)
    from django.conf import settings
    print("preloaded", "celery.bin.celery" in sys.modules, "settings", settings.configured)
    if sys.argv[1] == "sleep":
        time.sleep(60)
    if sys.argv[1] == "raise":
        raise RuntimeError("the probe failed")
    sys.exit(int(sys.argv[1]))
    """
)


Run = tuple[RunDirectory, ForkServer, subprocess.Popen[bytes], dict[str, str]]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    (tmp_path / "forkprobe.py").write_text(PROBE)
    host = RunDirectory(f"run-test-{uuid.uuid4().hex[:8]}")
    host.create()
    # A settings module in the controller's environment, as in a project's shell.
    settings = {"DJANGO_SETTINGS_MODULE": "exam_app.settings"}
    server, process = host.start_fork_server({"PYTHONPATH": python_path(), **settings})
    try:
        server.wait_ready()
        yield host, server, process, {"PYTHONPATH": str(tmp_path), "PROBE_VALUE": "from-the-run"}
    finally:
        host.kill_group(process)
        host.remove()


def test_a_forked_module_runs_as_python_m_would_and_its_exit_status_comes_back(run: Run) -> None:
    host, server, _process, env = run
    process = host.fork(server, "w1", ["python", "-m", "forkprobe", "7"], env)
    assert process.wait(timeout=10) == 7
    log = (host.dir / "w1.log").read_text()
    assert f"argv ['7'] cwd {host.dir}" in log
    assert "env from-the-run sid True" in log  # the run's environment, a session of its own
    # Celery in memory already; no settings read before the worker's own code runs.
    assert "preloaded True settings False" in log
    assert f"{process.pid} " in (host.dir / "pids").read_text()  # recorded for a leftover's cleanup


def test_a_failing_module_exits_1_with_its_traceback_in_the_log(run: Run) -> None:
    host, server, _process, env = run
    process = host.fork(server, "w1", ["python", "-m", "forkprobe", "raise"], env)
    assert process.wait(timeout=10) == 1
    assert "RuntimeError: the probe failed" in (host.dir / "w1.log").read_text()


def test_a_killed_group_reports_the_signal_and_wait_is_bounded(run: Run) -> None:
    host, server, _process, env = run
    process = host.fork(server, "w1", ["python", "-m", "forkprobe", "sleep"], env)
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.2)
    assert process.poll() is None
    assert os.getpgid(process.pid) == process.pid
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


def test_the_server_takes_its_workers_with_it_when_the_controller_is_gone(run: Run) -> None:
    host, server, server_process, env = run
    process = host.fork(server, "w1", ["python", "-m", "forkprobe", "sleep"], env)
    log = host.dir / "w1.log"

    def not_started() -> bool:
        return not (log.exists() and "sid True" in log.read_text())

    assert not until_nothing_missing(not_started, 10), "the probe did not start"
    assert server_process.stdin is not None
    server_process.stdin.close()  # as the controller's end would close it
    assert wait_gone(process.pid, 10) is not None, "the worker outlived its server"
    assert server_process.wait(timeout=10) == 0
    assert process.wait(timeout=10) == -signal.SIGKILL  # its end, reported without the server
