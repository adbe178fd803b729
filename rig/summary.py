"""The terminal's view of a result: one compact entry per scenario that fits
100 columns (name, verdict, the counts that are not zero, time), with the
reasons and the replay command under it when it did not pass. The full
table lives in the HTML report and the JSON."""

from __future__ import annotations

import shlex
import textwrap
from typing import Any

WIDTH = 100
VERDICT_STYLE = {
    "pass": "green",
    "fail": "red",
    "unknown": "yellow",
    "error": "magenta",
    "observed": "cyan",
    "skipped": "dim",
}
# `sent` is the input, not an outcome, and pool_processes is how the pools ran
# (one per worker at least); every other count shows when it is not zero.
HIDDEN_COUNTS = ("sent", "pool_processes")


def counts_text(counts: dict[str, int]) -> str:
    # A no-break space keeps each count with its name when the line wraps.
    shown = [
        f"{name}\u00a0{value}"
        for name, value in counts.items()
        if value and name not in HIDDEN_COUNTS
    ]
    return ", ".join(shown) or "no counts"


def entry(row: dict[str, Any], name_width: int, replay: str | None = None) -> list[str]:
    """Rich-markup lines for one result row (a result's JSON or a skipped row)."""
    verdict = row["verdict"]
    style = VERDICT_STYLE[verdict]
    name_width = min(name_width, 44)
    seconds = f"{row.get('seconds', 0):>5.1f} s"
    head = f"{row['scenario']:<{name_width}}  [{style}]{verdict:<8}[/] {seconds}  "
    visible = len(head) - len(f"[{style}][/]")
    body = row["reasons"][0] if verdict == "skipped" else counts_text(row.get("counts", {}))
    wrapped = textwrap.wrap(body, WIDTH - visible) or [""]
    lines = [head + wrapped[0], *(" " * visible + more for more in wrapped[1:])]
    if verdict in ("fail", "unknown", "error"):
        for reason in row["reasons"]:  # whole: an error's root cause is at its end
            lines += textwrap.wrap(reason, WIDTH, initial_indent="  - ", subsequent_indent="    ")
        if replay:
            lines += ["  replay:", *pasteable(replay, indent="    ")]
    return lines


def pasteable(command: str, indent: str) -> list[str]:
    """A long command over several lines joined by backslashes: fits, and still pastes."""
    lines, current = [], indent
    for word in _flag_groups(command):
        if len(current) + len(word) + 3 > WIDTH and current.strip():
            lines.append(current + " \\")
            current = indent + "  "
        current += ("" if not current.strip() else " ") + word
    return [*lines, current]


def _flag_groups(command: str) -> list[str]:
    """`--flag value` stays together on one line."""
    groups: list[str] = []
    for word in (shlex.quote(part) for part in shlex.split(command)):
        if groups and not word.startswith("-") and groups[-1].startswith("--"):
            groups[-1] += f" {word}"
        else:
            groups.append(word)
    return groups


def tally(rows: list[dict[str, Any]]) -> str:
    """ "6 of 8 passed, 1 fail, 1 skipped": the verdicts at a glance."""
    verdicts = [row["verdict"] for row in rows]
    passed = verdicts.count("pass")
    others = {v: verdicts.count(v) for v in VERDICT_STYLE if v != "pass" and v in verdicts}
    rest = "".join(f", {n} [{VERDICT_STYLE[v]}]{v}[/]" for v, n in others.items())
    return f"{passed} of {len(rows)} passed{rest}"
