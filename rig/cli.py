"""python -m rig: list | run | chaos | fairness | soak | clean.

Every user error ends as one line on stderr and a non-zero exit, never a
traceback; Ctrl-C and SIGTERM end the run after removing what it started.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rig import fairness, report
from rig.catalog import replay_command, run_scenarios, session
from rig.errors import BadInput
from rig.runner import Result
from rig.scenarios import find, load_catalog
from rig.settings import make_settings
from rig.terminal import console, err, progress, run_command


def _on_off(value: str) -> bool:
    return value == "on"


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "docker", "local"),
        default=None,
        help="where to run (default: RIG_BACKEND, else docker if an engine answers, else local)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rig", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the scenario catalog")

    run = commands.add_parser("run", help="run one named scenario, or any cell of the matrix")
    run.add_argument("scenario", nargs="?", help="a catalog scenario (see `list`)")
    run.add_argument("--acks", choices=("early", "late"))
    run.add_argument("--reject-on-worker-lost", choices=("on", "off"))
    run.add_argument("--kill", choices=("container", "pool-child", "none"))
    run.add_argument("--at", choices=("before_write", "in_transaction", "after_write"))
    run.add_argument("--task", choices=("create", "get_or_create", "get_or_create_unconstrained"))
    run.add_argument("--workers", type=int)
    run.add_argument("--tasks", type=int)
    run.add_argument("--task-seconds", type=float)
    run.add_argument("--visibility-timeout", type=float)
    run.add_argument("--restart", choices=("on", "off"))
    run.add_argument("--pool", choices=("prefork", "solo", "threads"))
    run.add_argument("--prefetch-multiplier", type=int)
    run.add_argument("--concurrency", type=int)
    run.add_argument("--json", type=Path, help="write the result as JSON here")
    _add_backend(run)

    chaos = commands.add_parser("chaos", help="run the whole catalog and write a report")
    chaos.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these")
    chaos.add_argument("--reports", type=Path, default=Path("reports"))
    chaos.add_argument(
        "--no-fairness", action="store_true", help="skip the prefetch fairness section"
    )
    _add_backend(chaos)

    fair = commands.add_parser("fairness", help="compare prefetch configurations on a burst")
    fair.add_argument("--only", nargs="+", metavar="CONFIG", help=", ".join(fairness.CONFIG_NAMES))
    defaults = fairness.Workload()
    fair.add_argument("--workers", type=int, default=defaults.workers)
    fair.add_argument("--long-tasks", type=int, default=defaults.long_tasks)
    fair.add_argument("--long-seconds", type=float, default=defaults.long_seconds)
    fair.add_argument("--short-tasks", type=int, default=defaults.short_tasks)
    fair.add_argument("--short-seconds", type=float, default=defaults.short_seconds)
    fair.add_argument("--burst", type=int, default=defaults.burst)
    fair.add_argument("--json", type=Path, help="write the comparison as JSON here")
    fair.add_argument("--reports", type=Path, default=Path("reports"))
    _add_backend(fair)

    soak = commands.add_parser("soak", help="run the catalog N times and count wrong verdicts")
    soak.add_argument("--runs", type=int, default=20)
    soak.add_argument("--json", type=Path)
    _add_backend(soak)

    commands.add_parser("clean", help="remove leftovers of interrupted runs")
    return parser


MATRIX_FLAGS = (
    "acks",
    "reject_on_worker_lost",
    "kill",
    "at",
    "task",
    "workers",
    "tasks",
    "task_seconds",
    "visibility_timeout",
    "restart",
    "pool",
    "prefetch_multiplier",
    "concurrency",
)


def _matrix_settings(args: argparse.Namespace) -> dict[str, Any]:
    given = {name: getattr(args, name) for name in MATRIX_FLAGS if getattr(args, name) is not None}
    for name in ("reject_on_worker_lost", "restart"):
        if name in given:
            given[name] = _on_off(given[name])
    return given


def _print_failures(results: list[Result], backend: str, directory: Path | None) -> None:
    for result in results:
        if result.outcome.verdict in ("fail", "unknown"):
            err.print(f"[bold]{result.name}[/]: {result.outcome.verdict}")
            for reason in result.outcome.reasons:
                err.print(f"  - {reason}")
            if directory is not None and result.worker_logs:
                err.print(f"  worker logs: {directory / 'logs'}")
            err.print(f"  replay it alone: {replay_command(result.name, backend)}")


def command_list() -> int:
    for scenario in load_catalog().values():
        requires = f" (needs {', '.join(scenario.requires)})" if scenario.requires else ""
        console.print(
            f"[bold]{scenario.name}[/]{requires}\n  {' '.join(scenario.description.split())}"
        )
    return 0


def command_run(args: argparse.Namespace) -> int:
    flags = _matrix_settings(args)
    if args.scenario:
        if flags:
            raise BadInput(
                f"scenario {args.scenario} fixes its own settings; drop the flags "
                f"({', '.join('--' + f.replace('_', '-') for f in flags)}) or the name"
            )
        scenario = find(args.scenario)
        name, settings, expect = scenario.name, scenario.settings, scenario.expect
    else:
        name, settings, expect = "matrix", make_settings(**flags), None
    with progress("starting") as update, session(args.backend, console.print) as runner:
        if args.scenario:
            results, skipped = run_scenarios(runner, [scenario], update)
            if skipped:
                console.print(skipped[0]["reasons"][0])
                return 0
            result = results[0]
        else:
            result = runner.run(name, settings, expect, update)
        backend = runner.backend.info.name
    row = result.as_json()
    console.print(report.results_table([row], f"{name} on {backend}"))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))
    _print_failures([result], backend, None)
    return 0 if result.outcome.verdict in ("pass", "observed") else 1


def command_chaos(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    names = args.only or list(catalog)
    for unknown in set(names) - set(catalog):
        raise BadInput(f"unknown scenario {unknown!r}; known: {', '.join(catalog)}")
    scenarios = [catalog[name] for name in names]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    fair: dict[str, Any] | None = None
    with progress("starting") as update, session(args.backend, console.print) as runner:
        done: list[str] = []

        def say(message: str) -> None:
            update(f"[{len(done) + 1}/{len(scenarios)}] {message}")

        results, skipped = [], []
        for scenario in scenarios:
            more, skip = run_scenarios(runner, [scenario], say)
            results += more
            skipped += skip
            done.append(scenario.name)
            verdict = more[0].outcome.verdict if more else "skipped"
            console.print(f"  {scenario.name}: [{report.VERDICT_STYLE[verdict]}]{verdict}[/]")
        info = runner.backend.info
        if not (args.only or args.no_fairness):
            workload = fairness.make_workload()
            fair_results = fairness.run_fairness(runner, list(fairness.CONFIGS), workload, update)
            fair = {
                "summary": fairness.as_json(fair_results, workload, info.name),
                "results": fair_results,
            }
        header = {
            "backend": info.name,
            "reason": info.reason,
            "started": started,
            "database": runner.services.database_engine,
        }
    directory = report.write_reports(
        report.new_report_dir(args.reports), results, skipped, header, fair
    )
    rows = [r.as_json() for r in results] + skipped
    console.print(report.results_table(rows, f"chaos catalog on {info.name}"))
    fair_complete = True
    if fair is not None:
        configs = fair["summary"]["configs"]
        console.print(report.fairness_table(configs, f"prefetch fairness on {info.name}"))
        fair_complete = all(c["complete"] for c in configs)
        if not fair_complete:
            err.print("fairness: some runs did not finish; replay: python -m rig fairness")
    console.print(f"report: {directory / 'report.html'}")
    _print_failures(results, info.name, directory)
    return 0 if all(r.outcome.verdict == "pass" for r in results) and fair_complete else 1


def command_fairness(args: argparse.Namespace) -> int:
    configs = fairness.select_configs(args.only)
    workload = fairness.make_workload(
        workers=args.workers,
        long_tasks=args.long_tasks,
        long_seconds=args.long_seconds,
        short_tasks=args.short_tasks,
        short_seconds=args.short_seconds,
        burst=args.burst,
    )
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with progress("starting") as update, session(args.backend, console.print) as runner:
        results = fairness.run_fairness(runner, configs, workload, update)
        info = runner.backend.info
        database = runner.services.database_engine
    summary = fairness.as_json(results, workload, info.name)
    header = {"backend": info.name, "reason": info.reason, "started": started, "database": database}
    fair = {"summary": summary, "results": results}
    directory = report.write_reports(report.new_report_dir(args.reports), [], [], header, fair)
    console.print(report.fairness_table(summary["configs"], f"prefetch fairness on {info.name}"))
    console.print(
        f"workload: {workload.workers} workers, {workload.long_tasks} x {workload.long_seconds} s "
        f"long then {workload.short_tasks} x {workload.short_seconds} s short; "
        f"throughput from {workload.burst} zero-second tasks"
    )
    console.print(f"report: {directory / 'report.html'}, picture: {directory / 'fairness.svg'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if not all(c["complete"] for c in summary["configs"]):
        err.print("some runs did not finish: their figures are partial (see the report)")
        return 1
    return 0


def command_soak(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise BadInput(f"--runs {args.runs}: must be at least 1")
    scenarios = list(load_catalog().values())
    wrong: Counter[str] = Counter()
    verdicts: dict[str, Counter[str]] = {s.name: Counter() for s in scenarios}
    seconds: list[float] = []
    with progress("starting") as update, session(args.backend, console.print) as runner:
        for run in range(1, args.runs + 1):
            started = time.time()
            say = lambda message, run=run: update(f"soak run {run}/{args.runs}: {message}")  # noqa: E731
            results, skipped = run_scenarios(runner, scenarios, say)
            seconds.append(time.time() - started)
            for result in results:
                verdicts[result.name][result.outcome.verdict] += 1
                if result.outcome.verdict != "pass":
                    wrong[result.name] += 1
            for row in skipped:
                verdicts[row["scenario"]]["skipped"] += 1
            console.print(
                f"run {run}: {sum(r.outcome.verdict != 'pass' for r in results)} wrong, "
                f"{seconds[-1]:.1f} s"
            )
        backend = runner.backend.info.name
    summary = {
        "backend": backend,
        "runs": args.runs,
        "seconds_per_run": [round(s, 1) for s in seconds],
        "scenarios": {
            name: {"wrong": wrong[name], "verdicts": dict(v)} for name, v in verdicts.items()
        },
    }
    for name, entry in summary["scenarios"].items():
        console.print(f"{name}: {entry['wrong']} wrong of {args.runs} ({entry['verdicts']})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if not wrong else 1


def command_clean() -> int:
    from rig.backends.local import remove_stale_runs

    cleaned = remove_stale_runs()
    console.print(f"local: removed {len(cleaned)} interrupted run(s)")
    from rig.backends.select import engine_answers

    if engine_answers()[0]:
        from rig.backends.docker import DockerBackend

        backend = DockerBackend("clean")
        backend._remove_leftovers()
        console.print("docker: " + ("; ".join(backend.info.notes) or "nothing left over"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "list": command_list,
        "run": lambda: command_run(args),
        "chaos": lambda: command_chaos(args),
        "fairness": lambda: command_fairness(args),
        "soak": lambda: command_soak(args),
        "clean": command_clean,
    }
    return run_command(commands[args.command])
