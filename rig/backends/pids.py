"""Is a process still there? Shared by both backends' leftover bookkeeping."""

from __future__ import annotations

import os
from pathlib import Path


def zombie(pid: int) -> bool:
    """True if the process is gone or dead but not yet reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


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
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def same_process(pid: int, started: int) -> bool:
    return start_time(pid) == started
