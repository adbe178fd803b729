"""Where the rig writes: one console for results, one for errors, and a
progress display that is a spinner on a terminal and timestamped lines in a
log (CI, a file), so a long step never sits silent either way."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

# Wide enough for the results tables when the output is a file or a CI log.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line


@contextmanager
def progress(first: str) -> Iterator[Callable[[str], None]]:
    if console.is_terminal:
        with console.status(first) as status:
            yield status.update
        return

    def line(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")
        sys.stdout.flush()

    line(first)
    yield line
