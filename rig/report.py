"""Shows results: a reports/<timestamp>/ folder
with results.json, history.jsonl and a self-contained report.html: a tally
of verdicts, a table, then per scenario a timeline as wide as the page, one
lane per worker, attempts as bars, kills marked and redeliveries linked.
Reads results; never talks to a backend."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rich.table import Table

from rig.checker.schedule import parse_schedule
from rig.explain import outbound_phrases
from rig.fairness import FairnessResult
from rig.faults.registry import part as fault_part
from rig.history import FAULT, HEAL, LEDGER, SENT, History
from rig.settings import make_settings
from rig.summary import counts_text
from rig.transports import DEFAULT_TRANSPORT, TRANSPORTS
from rig.workloads.registry import part as workload_part

if TYPE_CHECKING:
    from rig.backends.base import BackendInfo
    from rig.runner import Result

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The summary line, in this order: "6 of 8 passed · 1 failed · 1 crashed · 1 skipped".
VERDICT_WORDS = {
    "pass": "passed",
    "fail": "failed",
    "error": "crashed",
    "unknown": "unknown",
    "observed": "observed",
    "skipped": "skipped",
}


def _short_settings(values: dict[str, Any]) -> str:
    settings = make_settings(**values)
    faulted = settings.fault != "none"
    text = f"{settings.acks} ack" if settings.acks else "the app's acks"
    text += f", {settings.fault} at {settings.at}" if faulted else ", no fault"
    describe = fault_part(settings.fault, "describe")
    if describe is not None:
        text += f" ({describe(settings)})"
    if settings.reject_on_worker_lost:
        text += ", reject_on_worker_lost"
    if settings.fault_times > 1:
        text += f", up to {settings.fault_times} times"
    describe_work = workload_part(settings.workload, "describe")
    sent = describe_work(settings) if describe_work is not None else ""
    if sent:
        text += f", {sent}"
    given = TRANSPORTS[settings.transport].describe(settings)
    if given:
        text += f", {given}"
    return f"{text}, {settings.task}"


# --- the HTML timeline ----------------------------------------------------
@dataclass(frozen=True)
class Bar:
    """One execution (a ledger row), in seconds from the first send."""

    lane: int
    start: float
    end: float
    label: str  # "kill-0 #2 on w2": the task (its key), the attempt, the worker
    tooltip: str  # business key, task id, pid, times
    state: str  # finished, killed (a fault ended it) or open (neither: never finished)
    task_id: str
    attempt: int
    flagged: bool = False  # its task broke the run's property (explore)


@dataclass(frozen=True)
class Mark:
    """A fault confirmed on an attempt; `kill` for the one that ended it."""

    lane: int
    at: float
    label: str
    tooltip: str
    kill: bool


@dataclass(frozen=True)
class Link:
    """A redelivery: from a kill to the start of the task's next attempt."""

    from_lane: int
    from_at: float
    to_lane: int
    to_at: float

    @property
    def latency(self) -> float:
        return self.to_at - self.from_at


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Window:
    """A fault in force on a worker: from its landing to its heal (or the end it caused)."""

    lane: int
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Timeline:
    lanes: list[str]
    bars: list[Bar]
    marks: list[Mark]
    links: list[Link]
    windows: list[Window]
    ticks: list[Tick]
    origin: float
    span: float  # the axis length: the last tick, so the axis ends on a round number


def nice_ticks(span: float, most: int = 8) -> list[Tick]:
    """Ticks every 1, 2 or 5 × 10^k seconds: the smallest such step with at most `most` gaps."""
    raw = max(span, 0.01) / most
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    gaps = max(1, math.ceil(span / step - 1e-9))
    return [Tick(round(i * step, 6), f"{round(i * step, 6):g} s") for i in range(gaps + 1)]


def _worker(hostname: str) -> str:
    return hostname.split("@", 1)[-1]  # celery@w1 -> w1, the backend's name for the worker


def _bar(
    row: dict[str, Any], lane: int, fault: dict[str, Any] | None, last: float, origin: float
) -> Bar:
    """`fault` is the first one confirmed on this attempt; `last` ends an attempt that never did."""
    finished = row.get("finished_at")
    killed = fault is not None and not finished  # an attempt that finished survived its fault
    state = "finished" if finished else "killed" if killed else "open"
    # An execution that ended unfinished (it raised, was retried) stops where it ended.
    end = finished or (fault["confirmed_at"] if fault and killed else row.get("ended_at") or last)
    tooltip = (
        f"{row.get('business_key')}: task {row['task_id']} attempt {row['attempt']}"
        f" on {row['hostname']} pid {row.get('pid')}, {state}"
        + (", wrote its row" if row.get("written_at") else "")
        + (", a redelivery" if row.get("redelivered") else "")
        + "".join(outbound_phrases(row))
    )
    task = row.get("business_key") or row["task_id"][:8]
    label = f"{task} #{row['attempt']} on {_worker(row['hostname'])}"
    start = row["started_at"] - origin
    return Bar(lane, start, end - origin, label, tooltip, state, row["task_id"], row["attempt"])


def _mark(fault: dict[str, Any], bar: Bar, kill: bool, origin: float) -> Mark:
    landed = "landed in its window" if fault.get("landed") else "did not land in its window"
    tooltip = f"{fault['name']} ({fault.get('action')}) on {fault.get('target')}, {landed}"
    label = f"{fault['name']} ({fault.get('action')})" if kill else fault["name"]
    return Mark(bar.lane, fault["confirmed_at"] - origin, label, tooltip, kill)


def _links(bars: list[Bar]) -> list[Link]:
    """From each killed attempt to the task's next attempt, if there was one."""
    links = []
    for bar in (b for b in bars if b.state == "killed"):
        later = [b for b in bars if b.task_id == bar.task_id and b.attempt > bar.attempt]
        if later:
            after = min(later, key=lambda b: b.attempt)
            links.append(Link(bar.lane, bar.end, after.lane, after.start))
    return links


def timeline(history: History, flagged: frozenset[str] = frozenset()) -> Timeline:
    """Lanes, bars, fault marks, redelivery links and ticks; the bars of the tasks
    in `flagged` stand out. Pure: reads the history only."""
    sent = history.events(SENT)
    ledger = [e.data for e in history.events(LEDGER)]
    # Any fault aimed at an attempt and confirmed marks it, whatever its signal or name.
    faults = sorted(
        (e.data for e in history.events(FAULT) if _aimed(e.data)),
        key=lambda f: f["confirmed_at"],
    )
    heals = [e.data for e in history.events(HEAL)]
    origin = min([e.at for e in sent] + [r["started_at"] for r in ledger], default=0.0)
    last = max(
        [r.get("finished_at") or r["started_at"] for r in ledger]
        + [f["confirmed_at"] for f in faults]
        + [h["healed_at"] for h in heals],
        default=origin,
    )
    ticks = nice_ticks(last - origin)
    end = origin + ticks[-1].at  # an attempt that never finished runs off the end of the axis
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for fault in faults:
        first.setdefault((fault["task_id"], fault["attempt"]), fault)
    hosts = sorted({r["hostname"] for r in ledger})
    bars = [
        replace(
            _bar(
                r, hosts.index(r["hostname"]), first.get((r["task_id"], r["attempt"])), end, origin
            ),
            flagged=r["task_id"] in flagged,
        )
        for r in ledger
    ]
    attempts = {(b.task_id, b.attempt): b for b in bars}
    lanes = [_worker(h) for h in hosts]
    windows = _windows(faults, heals, lanes, origin)
    # A fault that lasted is drawn as its window; the one that ended an attempt
    # also gets its mark.
    shaded = {round(w.start + origin, 6) for w in windows}
    marks = [
        _mark(f, attempts[key], kill, origin)
        for f in faults
        if (key := (f["task_id"], f["attempt"])) in attempts
        and (
            (kill := f is first[key] and attempts[key].state == "killed")
            or round(f["checkpoint_at"], 6) not in shaded
        )
    ]
    return Timeline(lanes, bars, marks, _links(bars), windows, ticks, origin, ticks[-1].at)


def _windows(
    faults: list[dict[str, Any]], heals: list[dict[str, Any]], lanes: list[str], origin: float
) -> list[Window]:
    """Shade each fault that lasted (a pause, a partition, a shutdown), not an instant kill."""
    windows = []
    for fault in faults:
        worker = str(fault["target"]).split(" ", 1)[0]
        healed = [h["healed_at"] for h in heals if _heals(h, fault)]
        end = min(healed) if healed else fault["confirmed_at"]
        if worker in lanes and end - fault["checkpoint_at"] >= 0.2:
            label = f"{fault['name']}: {fault.get('action', '')}"
            start = fault["checkpoint_at"] - origin
            windows.append(Window(lanes.index(worker), start, end - origin, label))
    return windows


def _heals(heal: dict[str, Any], fault: dict[str, Any]) -> bool:
    """The heal of this fault: by its id (a history stored before ids: by name)."""
    if "fault_id" in heal and "id" in fault:
        return bool(heal["fault_id"] == fault["id"])
    return bool(heal["name"] == fault["name"])


def fault_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fault and settings: what was lost, run again and duplicated. The table
    a team reads before choosing acks_late, reject_on_worker_lost and a shutdown."""
    table = [
        {
            "fault": _fault_of(row),
            "scenario": row["scenario"],
            "transport": row.get("transport", DEFAULT_TRANSPORT),
            "settings": _settings_of(row),
            "lost": row["counts"]["lost"],
            "run_again": _run_again(row["counts"]),
            "duplicate_rows": row["counts"]["duplicate_rows"],
            "duplicate_effects": _duplicate_effects(row["counts"]),
            "verdict": row["verdict"],
        }
        for row in rows
        if row.get("counts") and row["verdict"] != "skipped"
    ]
    return sorted(table, key=lambda entry: (entry["fault"], entry["scenario"]))


def _run_again(counts: dict[str, int]) -> int:
    """Work done again: redeliveries, and schedule slots sent and run twice (older histories: 0)."""
    return counts["redelivered"] + counts.get("duplicate_scheduled_runs", 0)


def _duplicate_effects(counts: dict[str, int]) -> int:
    """HTTP calls and emails that had their effect twice (older histories: 0)."""
    return counts.get("duplicate_external_effects", 0) + counts.get("duplicate_emails", 0)


def _fault_of(row: dict[str, Any]) -> str:
    """The fault of a scenario; an explore run's: the kinds of its schedule that landed."""
    if "schedule" not in row:
        return str(row["settings"]["fault"])
    landed = sorted({step.fault for step in parse_schedule(row.get("landed", ""))})
    return f"explore: {', '.join(landed) or 'none landed'}"


def _settings_of(row: dict[str, Any]) -> str:
    if "schedule" not in row:
        return _short_settings(row["settings"])
    settings = row["settings"]
    acks = f"{settings['acks']} ack" if settings["acks"] else "the app's acks"
    landed = len(parse_schedule(row.get("landed", "")))
    return (
        f"{acks}, {settings['tasks']} tasks, {landed} fault(s) landed, "
        f"expect {row['expect']}, {settings['task']}"
    )


def transport_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Each scenario once, with its result on every transport it ran on, side by
    side: executions, lost, duplicate rows, redelivery latency, verdict. Empty
    when only one transport ran."""
    transports = list(dict.fromkeys(row.get("transport", DEFAULT_TRANSPORT) for row in rows))
    if len(transports) < 2:
        return transports, []
    by_name: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row["scenario"].split("@", 1)[0]
        entry = by_name.setdefault(name, {"scenario": name, "cells": {}})
        counts = row.get("counts") or {}
        latencies = row.get("redelivery_latency_s") or []
        entry["cells"][row.get("transport", DEFAULT_TRANSPORT)] = {
            "anchor": row["scenario"],
            "verdict": row["verdict"],
            "executions": counts.get("executions"),
            "lost": counts.get("lost"),
            "duplicate_rows": counts.get("duplicate_rows"),
            "duplicate_effects": _duplicate_effects(counts),
            "latency_s": min(latencies) if latencies else None,
            "reason": row["reasons"][0] if row["verdict"] == "skipped" else "",
        }
    return transports, list(by_name.values())


def _aimed(fault: dict[str, Any]) -> bool:
    return all(fault.get(key) is not None for key in ("task_id", "attempt", "confirmed_at"))


# --- fairness: table and lanes of reserved and running time -------------------
FAIRNESS_COLUMNS = (
    ("configuration", "name"),
    ("held behind", "held_behind"),
    ("unfair wait s", "unfair_wait_s"),
    ("max held", "max_held_by_one_worker"),
    ("makespan s", "makespan_s"),
    ("short tasks: rate, x first (spread)", "short_task_throughput_per_s"),
)


def throughput_text(row: dict[str, Any]) -> str:
    """Tasks per second and, against the first configuration in the same rounds,
    the median ratio and its spread from min to max."""
    ratios = row.get("throughput_vs_first_rounds") or []
    spread = f" ({min(ratios):.2f} to {max(ratios):.2f})" if len(ratios) > 1 else ""
    ratio = f", x{row['throughput_vs_first']:.2f}{spread}" if ratios else ""
    return f"{row['short_task_throughput_per_s']:g}/s{ratio}"


def fairness_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for header, _ in FAIRNESS_COLUMNS:
        table.add_column(header, overflow="fold")
    table.add_column("utilisation")
    for row in rows:
        cells = [
            f"{row[key]:.1f}" if isinstance(row[key], float) else str(row[key])
            for _, key in FAIRNESS_COLUMNS[:-1]
        ] + [throughput_text(row)]
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
        title = result.config.title
        if result.workload.transport != DEFAULT_TRANSPORT:
            title += f", on {result.workload.transport}"
        panels.append(Panel(title, summary, lanes, bars, top))
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


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(verdict, text) badges: how many passed out of all, then every other verdict seen."""
    seen = Counter(row["verdict"] for row in rows)
    badges = [("pass", f"{seen['pass']} of {len(rows)} passed")]
    others = [v for v in VERDICT_WORDS if v != "pass"] + sorted(set(seen) - set(VERDICT_WORDS))
    return badges + [(v, f"{seen[v]} {VERDICT_WORDS.get(v, v)}") for v in others if seen[v]]


def _write_logs(directory: Path, result: Result) -> list[str]:
    """Each worker's log as logs/<scenario>-<worker>.log; the paths, relative to the report."""
    names = []
    for worker, log in result.worker_logs.items():
        name = f"logs/{result.name}-{worker}.log"
        (directory / "logs").mkdir(exist_ok=True)
        (directory / name).write_text(log)
        names.append(name)
    return names


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )


def header(backend: BackendInfo, started: float, database: str, note: str = "") -> dict[str, Any]:
    """What a report begins with: the backend and why it was chosen (and `note`),
    when the run began, the database engine the runs wrote to."""
    return {
        "backend": backend.name,
        "reason": f"{backend.reason}; {note}" if note else backend.reason,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "database": database,
    }


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
    logs = {}
    for result in results:
        result.history.write_jsonl(history_path, scenario=result.name)
        logs[result.name] = _write_logs(directory, result)
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            header=header,
            rows=rows,
            summary=summary(rows),
            by_fault=fault_table(rows),
            by_transport=transport_table(rows),
            logs=logs,
            timelines={r.name: timeline(r.history, _flagged(r)) for r in results},
            describe=_short_settings,
            counts_text=counts_text,
            fairness=fairness["summary"] if fairness else None,
            fairness_svg=fairness_svg_text,
            throughput_text=throughput_text,
        )
    )
    (directory / "report.html").write_text(html)
    return directory


def _flagged(result: Result) -> frozenset[str]:
    """The tasks that broke an explored property."""
    return frozenset(v["task_id"] for v in result.extra.get("violations", []))


def new_report_dir(root: Path = Path("reports")) -> Path:
    return root / time.strftime("%Y%m%d-%H%M%S")
