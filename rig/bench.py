"""make bench: how fast the rig reaches its verdicts, on each backend.

For each backend (Docker where an engine answers, and local): the whole
catalog from a stopped stack (start, every scenario, teardown), the time to
verdict of each scenario on the running stack, and the kill latency from a
task's checkpoint to the confirmed death (Docker's `die` event, or the
process's exit status locally). Targets (issue 14, half of what this
machine measured before each scenario's workers started while the previous
one settled): median time to verdict of the kill scenarios at most 5.2 s on
Docker and 3.85 s locally, the catalog from a stopped stack at most 40 s and
30 s, median kill latency under 200 ms. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from rig.backends.select import engine_answers
from rig.catalog import run_scenarios, session
from rig.faults import kill_container
from rig.scenarios import load_catalog
from rig.terminal import console, progress, run_command

TARGETS = {
    "scenario_s": 15.0,
    "kill_scenarios_median_s": {"docker": 5.2, "local": 3.85},
    "catalog_s": {"docker": 40.0, "local": 30.0},
    "kill_ms": 200.0,
}


def bench_backend(backend: str) -> dict[str, Any]:
    scenarios = list(load_catalog().values())
    started = time.time()
    with progress(f"{backend}: starting") as update, session(backend, console.print) as runner:
        ready = time.time()
        results, skipped = run_scenarios(runner, scenarios, update)
    total = time.time() - started
    latencies = [
        fault["kill_latency_s"] * 1000
        for result in results
        for fault in result.as_json()["faults"]
        if fault["kill_latency_s"] is not None and fault["name"] == kill_container.NAME
    ]
    kill_seconds = [r.seconds for r in results if r.settings.fault != "none"]
    return {
        "backend": backend,
        "catalog_from_stopped_s": round(total, 1),
        "kill_scenarios_median_s": round(statistics.median(kill_seconds), 2)
        if kill_seconds
        else None,
        "start_s": round(ready - started, 1),
        "scenarios": {
            r.name: {
                "seconds": round(r.seconds, 1),
                "verdict": r.outcome.verdict,
                "settings": r.settings.as_dict(),
                "counts": r.outcome.counts.as_dict(),
            }
            for r in results
        }
        | {row["scenario"]: {"seconds": None, "verdict": "skipped"} for row in skipped},
        "kill_latency_ms": [round(ms, 1) for ms in latencies],
        "kill_latency_median_ms": round(statistics.median(latencies), 1) if latencies else None,
    }


def _mark(value: float | None, target: float) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value <= target else f"[red]{value:.1f}[/] (target {target:g})"


def show(figures: list[dict[str, Any]]) -> None:
    table = Table(title="time to verdict per scenario, stack running (s)")
    table.add_column("scenario")
    for entry in figures:
        table.add_column(entry["backend"])
    for name in load_catalog():
        cells = []
        for entry in figures:
            scenario = entry["scenarios"].get(name, {})
            seconds = scenario.get("seconds")
            verdict = scenario.get("verdict", "-")
            cells.append(
                "skipped"
                if seconds is None
                else f"{_mark(seconds, TARGETS['scenario_s'])} {verdict}"
            )
        table.add_row(name, *cells)
    console.print(table)
    summary = Table(title="catalog and kill latency")
    columns = (
        "backend",
        "start s",
        "median to verdict, kill scenarios s",
        "catalog from stopped s",
        "kill latency median ms",
        "n",
    )
    for column in columns:
        summary.add_column(column)
    for entry in figures:
        summary.add_row(
            entry["backend"],
            f"{entry['start_s']:.1f}",
            _mark(
                entry["kill_scenarios_median_s"],
                TARGETS["kill_scenarios_median_s"][entry["backend"]],
            ),
            _mark(entry["catalog_from_stopped_s"], TARGETS["catalog_s"][entry["backend"]]),
            _mark(entry["kill_latency_median_ms"], TARGETS["kill_ms"]),
            str(len(entry["kill_latency_ms"])),
        )
    console.print(summary)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"controller peak memory: {peak_mb:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.bench", description=__doc__)
    parser.add_argument("--backend", choices=("docker", "local"), action="append")
    parser.add_argument("--json", type=Path, default=Path("reports/bench.json"))
    args = parser.parse_args(argv)
    backends = args.backend or (["docker", "local"] if engine_answers()[0] else ["local"])
    figures = [bench_backend(backend) for backend in backends]
    show(figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    console.print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
