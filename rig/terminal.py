"""Where the rig writes: one console for results, one for errors, and a
progress display that is one live line on a terminal and timestamped lines
in a log (CI, a file) or with --verbose, so a long step never sits silent."""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from rich.console import Console

from rig.errors import RigError

# Results are written to fit 100 columns; a log gets the same width.
# Everything is written to fit 100 columns, on a wide terminal and in a log alike.
console = Console(highlight=False, width=min(shutil.get_terminal_size((100, 24)).columns, 100))
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line


def program() -> str:
    """How the user runs the rig, for the commands it prints: `python -m rig` from
    a checkout, else the installed `celery-rig` (also from pytest's plugin)."""
    return "python -m rig" if sys.argv[0].endswith("__main__.py") else "celery-rig"


@contextmanager
def progress(first: str, verbose: bool = False) -> Iterator[Callable[[str], None]]:
    if console.is_terminal and not verbose:
        with console.status(first) as status:
            yield status.update
        return

    def line(message: str) -> None:
        console.print(
            f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", no_wrap=True, overflow="ellipsis"
        )
        sys.stdout.flush()

    line(first)
    yield line


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every finally block runs.
    raise KeyboardInterrupt(f"signal {signum}")


def run_command(command: Callable[[], int]) -> int:
    """Run an entry point: a user error is one line and its exit code, never a
    traceback; Ctrl-C and SIGTERM end it after its cleanup has run."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return command()
    except RigError as error:
        err.print(f"[red]error:[/] {error}")
        return error.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted:[/] everything this run started has been removed")
        return 130
