"""Shows results: a terminal table (rich) and a reports/<timestamp>/ folder
with results.json, history.jsonl and a self-contained report.html whose
timeline has one lane per worker, attempts as bars, kills marked and
redeliveries linked. Reads results; never talks to a backend."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rich.table import Table

from rig.fairness import FairnessResult
from rig.history import FAULT, LEDGER, SENT, History
from rig.runner import Result

TEMPLATES = Path(__file__).resolve().parent / "templates"
VERDICT_STYLE = {
    "pass": "green",
    "fail": "red",
    "unknown": "yellow",
    "observed": "cyan",
    "skipped": "dim",
}
SHOWN_COUNTS = (
    "executions",
    "completed",
    "lost",
    "redelivered",
    "duplicate_rows",
    "missing_rows",
    "failed",
)


def _short_settings(settings: dict[str, Any]) -> str:
    text = f"{settings['acks']} ack, kill {settings['kill']}"
    if settings["kill"] != "none":
        text += f" at {settings['at']}"
    if settings["reject_on_worker_lost"]:
        text += ", reject_on_worker_lost"
    if settings["kill"] == "none":
        text += f", {settings['task_seconds']}s task > {settings['visibility_timeout']}s visibility"
    return f"{text}, {settings['task']}"


def _expected_text(expected: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in expected.items() if k in SHOWN_COUNTS)


def results_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("scenario", "settings", "expected", *SHOWN_COUNTS, "verdict", "s"):
        table.add_column(column, overflow="fold")
    for row in rows:
        verdict = row["verdict"]
        counts = row.get("counts", {})
        table.add_row(
            row["scenario"],
            _short_settings(row["settings"]),
            _expected_text(row.get("expected", {})) if verdict != "skipped" else row["reasons"][0],
            *(str(counts.get(name, "")) for name in SHOWN_COUNTS),
            f"[{VERDICT_STYLE[verdict]}]{verdict}[/]",
            f"{row.get('seconds', 0):.1f}",
        )
    return table


# --- the HTML timeline ----------------------------------------------------
@dataclass(frozen=True)
class Bar:
    lane: int
    start: float
    end: float
    label: str
    killed: bool
    task_id: str
    attempt: int


@dataclass(frozen=True)
class Timeline:
    lanes: list[str]
    bars: list[Bar]
    kills: list[tuple[int, float, str]]  # lane, time, label
    links: list[tuple[int, float, int, float]]  # from lane/time (kill) to lane/time (next start)
    origin: float
    span: float


def timeline(history: History) -> Timeline:
    sent = history.events(SENT)
    ledger = [e.data for e in history.events(LEDGER)]
    faults = [e.data for e in history.events(FAULT) if e.data.get("signal") == "SIGKILL"]
    origin = min([e.at for e in sent] + [r["started_at"] for r in ledger] or [time.time()])
    end = max(
        [r["finished_at"] or r["started_at"] for r in ledger]
        + [f["confirmed_at"] or origin for f in faults]
        + [origin + 1]
    )
    lanes = sorted({r["hostname"] for r in ledger})
    kill_at = {(f["task_id"], f["attempt"]): f["confirmed_at"] or end for f in faults}
    bars = [
        Bar(
            lane=lanes.index(r["hostname"]),
            start=r["started_at"] - origin,
            end=(r["finished_at"] or kill_at.get((r["task_id"], r["attempt"]), end)) - origin,
            label=f"{r['business_key']} #{r['attempt']}",
            killed=(r["task_id"], r["attempt"]) in kill_at,
            task_id=r["task_id"],
            attempt=r["attempt"],
        )
        for r in ledger
    ]
    kills, links = [], []
    for bar in bars:
        if not bar.killed:
            continue
        kills.append((bar.lane, bar.end, "SIGKILL"))
        later = [b for b in bars if b.task_id == bar.task_id and b.attempt == bar.attempt + 1]
        if later:
            links.append((bar.lane, bar.end, later[0].lane, later[0].start))
    return Timeline(lanes, bars, kills, links, origin, end - origin)


# --- fairness: table and lanes of reserved and running time -------------------
FAIRNESS_COLUMNS = (
    ("configuration", "title"),
    ("held behind", "held_behind"),
    ("unfair wait s", "unfair_wait_s"),
    ("max held", "max_held_by_one_worker"),
    ("makespan s", "makespan_s"),
    ("short tasks/s", "short_task_throughput_per_s"),
)


def fairness_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for header, _ in FAIRNESS_COLUMNS:
        table.add_column(header, overflow="fold")
    table.add_column("utilisation")
    for row in rows:
        cells = [str(row[key]) for _, key in FAIRNESS_COLUMNS]
        if not row["complete"]:
            cells[0] += " [yellow](incomplete)[/]"
        utilisation = " ".join(f"{u:.0%}" for u in row["utilisation"].values())
        table.add_row(*cells, utilisation)
    return table


@dataclass(frozen=True)
class SpanBar:
    lane: int
    start: float
    end: float
    kind: str
    reserved: bool
    label: str


@dataclass(frozen=True)
class Panel:
    title: str
    summary: str
    lanes: list[str]
    bars: list[SpanBar]
    top: int


def fairness_svg(results: list[FairnessResult]) -> str:
    """One picture, one panel per configuration, on a shared time scale."""
    panels, top = [], 0
    span = 1.0
    for result in results:
        lanes = sorted(result.consumers)
        origin = min((s.sent_at for s in result.spans), default=0.0)
        bars = []
        for s in result.spans:
            lane = lanes.index(s.worker)
            name = f"{s.kind} {s.task_id[:8]}"
            bars.append(
                SpanBar(
                    lane,
                    s.received_at - origin,
                    s.started_at - origin,
                    s.kind,
                    True,
                    f"{name} reserved {s.reserved_s:.2f}s",
                )
            )
            bars.append(
                SpanBar(
                    lane,
                    s.started_at - origin,
                    s.finished_at - origin,
                    s.kind,
                    False,
                    f"{name} ran {s.run_s:.2f}s",
                )
            )
            span = max(span, s.finished_at - origin)
        m = result.metrics
        summary = (
            f"unfair wait {m.unfair_wait_s:.1f}s, max held {m.max_held_by_one_worker}, "
            f"makespan {m.makespan_s:.1f}s, {result.throughput_per_s:.0f} short tasks/s"
        )
        panels.append(Panel(result.config.title, summary, lanes, bars, top))
        top += 22 + 26 * len(lanes) + 18
    return (
        _environment()
        .get_template("fairness.svg.j2")
        .render(panels=panels, span=span, height=top + 24)
    )


def write_fairness(directory: Path, results: list[FairnessResult], summary: dict[str, Any]) -> str:
    """fairness.json and fairness.svg; returns the picture, for the HTML report."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fairness.json").write_text(json.dumps(summary, indent=2))
    picture = fairness_svg(results)
    (directory / "fairness.svg").write_text(picture)
    return picture


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )


def write_reports(
    directory: Path,
    results: list[Result],
    skipped: list[dict[str, Any]],
    header: dict[str, Any],
    fairness: dict[str, Any] | None = None,
) -> Path:
    """The report folder; `fairness` is {"summary": as_json(...), "results": [...]} or None."""
    directory.mkdir(parents=True, exist_ok=True)
    fairness_svg_text = None
    if fairness is not None:
        fairness_svg_text = write_fairness(directory, fairness["results"], fairness["summary"])
    rows = [result.as_json() for result in results] + skipped
    (directory / "results.json").write_text(json.dumps({**header, "scenarios": rows}, indent=2))
    history_path = directory / "history.jsonl"
    history_path.unlink(missing_ok=True)
    for result in results:
        result.history.write_jsonl(history_path, scenario=result.name)
        for worker, log in result.worker_logs.items():
            logs = directory / "logs"
            logs.mkdir(exist_ok=True)
            (logs / f"{result.name}-{worker}.log").write_text(log)
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            header=header,
            rows=rows,
            timelines={r.name: timeline(r.history) for r in results},
            describe=_short_settings,
            shown_counts=SHOWN_COUNTS,
            fairness=fairness["summary"] if fairness else None,
            fairness_svg=fairness_svg_text,
        )
    )
    (directory / "report.html").write_text(html)
    return directory


def new_report_dir(root: Path = Path("reports")) -> Path:
    return root / time.strftime("%Y%m%d-%H%M%S")
