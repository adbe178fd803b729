"""Is a process still there? Shared by both backends' leftover bookkeeping, their
kills' confirmations (the Docker backend runs this module inside a container),
and the sender-kill fault's."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; the name before it may hold spaces."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it died between open and read
        return None
    return stat.rsplit(")", 1)[1].split()


def zombie(pid: int) -> bool:
    """True if the process is gone or dead but not yet reaped."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def wait_gone(pid: int, timeout_s: float) -> float | None:
    """When the process was seen gone or a zombie (its table entry, polled), or
    None if it was still there after timeout_s."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if zombie(pid):
            return time.time()
        time.sleep(0.01)
    return None


def stopped(pid: int) -> bool:
    """True if the process is stopped by a signal (SIGSTOP): frozen."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "T"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to touch
    return not zombie(pid)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22).

    With the pid it names one process for good: a reused pid has another
    start time. (An environment marker would not do: redis-server rewrites
    its environ to make room for its process title.)
    """
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def same_process(pid: int, started: int) -> bool:
    return start_time(pid) == started
