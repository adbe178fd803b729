"""python -m rig (celery-rig): list | run | chaos | fairness | soak | explore | check | clean.

Flags of `run` and `fairness` come from the settings' declarations
(rig.settings, rig.fairness.Workload through rig.schema), help and all.

Every user error ends as one line on stderr and a non-zero exit, never a
traceback; Ctrl-C and SIGTERM end the run after removing what it started.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig import explore, fairness, report, schema, summary
from rig.catalog import on_transports, replay_command, run_scenarios, session
from rig.checker import properties, stored
from rig.errors import BadInput
from rig.explain import explain
from rig.explore import ExploreSettings
from rig.scenarios import CATALOG_DIR, Scenario, find, load_catalog
from rig.settings import Settings, make_settings
from rig.target import TargetSettings, pin_project_dir, resolve
from rig.terminal import console, err, progress, run_command
from rig.transports import DEFAULT_TRANSPORT, TRANSPORTS

if TYPE_CHECKING:
    from rig.runner import Progress, Runner

# Scenarios at once in `chaos` and `soak`, chosen by measurement on a 2-core
# machine (docs/measurements.md): at 3, 0 wrong verdicts in Docker and local
# catalog soaks, once the races a loaded machine decided were controlled
# (before, 2 wrong in one Docker run); 4 lanes would load two cores past
# what the soaks measured.
DEFAULT_JOBS = 3

EXAMPLES = {
    "list": """examples:
  python -m rig list
  RIG_CATALOG_DIR=my_scenarios python -m rig list""",
    "run": """Kill a worker at a checkpoint inside a task and count what happened to the work.
Give a catalog scenario's name (see `list`), or build any cell of the matrix with
the flags below; flags left out take their defaults. A matrix cell has no
expectation: its verdict is "observed", or "unknown" if the kill never landed.

Point it at your own Django + Celery project with --app (from the project's root, or
--project-dir): the rig starts its own broker and database, migrates your project
into that database, and passes its checkpoints in your tasks with no code change.

examples:
  python -m rig run late_ack_kill_after_commit_create
  python -m rig run --acks late --fault container --at after_commit --task create --tasks 4
  celery-rig run --app shop.celery:app --task payments.tasks.charge \\
    --kwargs '{"order_id": "{key}"}' --tasks 2 --fault container --at after_commit \\
    --effects "SELECT order_id, count(*) FROM payments_payment GROUP BY order_id\"""",
    "chaos": """Run the catalog (chaos/*.toml), one after another on one broker and database,
then write reports/<time>/ (report.html, results.json, history.jsonl).

Your own scenario files work the same way: --catalog names their folder, and
--app (with the other project flags) fills in what a file does not say.

examples:
  python -m rig chaos --only early_ack_kill_before_write --backend local --no-fairness
  celery-rig chaos --catalog chaos --app shop.celery:app      # from examples/shop""",
    "fairness": """Send a burst of long then short tasks to workers of concurrency 1 under each
prefetch configuration and measure, from Celery's events, how long tasks waited
reserved behind another while a worker idled; then the short-task throughput.

examples:
  python -m rig fairness
  python -m rig fairness --only early-ack late-ack --rounds 1""",
    "soak": """Run the whole catalog N times on one backend and count wrong verdicts.

examples:
  python -m rig soak --runs 20
  python -m rig soak --runs 3 --backend local --json soak.json
  python -m rig soak --runs 10 --only broker_restart_without_persistence""",
    "explore": """Send many tasks while faults drawn from a seed land at random checkpoints and
times, and check a property over the whole run. When it fails, shrink the schedule
to the fewest faults and tasks that still fail, and print the replay command and a
scenario file for chaos/. The same seed draws the same schedule.

examples:
  python -m rig explore --acks late --task create --faults container --expect no-duplicate-rows
  python -m rig explore --task get_or_create --faults container,pause,pool-child --seed 7
  celery-rig explore --app shop.celery:app --task payments.tasks.charge \\
    --kwargs '{"order_id": "{key}"}' --effects payments.effects:payments_per_order""",
    "check": """Re-check a stored run with the current checker, offline, with no backend (as
Jepsen's analyze does): each scenario's history from history.jsonl, its
expectation from results.json beside it. Says whether each verdict is the
one the run gave; exits non-zero if any differs or did not pass.

examples:
  python -m rig check reports/20261127-155943
  python -m rig check reports/20261127-155943/history.jsonl""",
    "clean": """Remove what interrupted runs left: labelled containers and networks, local
processes and run directories whose owner is gone (runs under this TMPDIR),
and every rig_* database on the PostgreSQL server RIG_DATABASE_SERVER names,
if set.

examples:
  python -m rig clean
  make down""",
}


EXPLAINED_TASKS = 5  # `run` says per task what happened, up to this many tasks


def _command(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_reports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where the timestamped report folder goes (default: reports)",
    )


def _add_transports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=(*TRANSPORTS, "all"),
        default="all",
        help="the broker(s) every scenario runs on, one after the other (default: all)",
    )


def _transports(args: argparse.Namespace) -> list[str]:
    return list(TRANSPORTS) if args.transport == "all" else [args.transport]


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=DEFAULT_JOBS,
        metavar="N",
        help="scenarios at once, each on crews and a database of its own; those that stop "
        "or reconfigure the broker take a second broker node in turn "
        f"(default: {DEFAULT_JOBS}, measured in `make bench`)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "docker", "local"),
        default=None,
        help="where to run (default: RIG_BACKEND, else docker if an engine answers, else local)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every progress line instead of one live line per scenario",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celery-rig" if Path(sys.argv[0]).name == "celery-rig" else "python -m rig",
        description="Kill Celery workers mid-task and count lost, repeated and duplicated work.",
        epilog="Each command has its own --help, with examples.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _command(commands, "list", "list the scenario catalog and every setting")

    run = _command(commands, "run", "run one catalog scenario, or any cell of the matrix")
    run.add_argument("scenario", nargs="?", help="a catalog scenario's name (see `list`)")
    schema.add_flags(run, Settings, "matrix settings (for a cell; a named scenario fixes its own)")
    run.add_argument("--json", type=Path, metavar="PATH", help="write the result as JSON here")
    _add_common(run)

    chaos = _command(commands, "chaos", "run the whole catalog and write a report")
    chaos.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these scenarios")
    chaos.add_argument(
        "--catalog",
        type=Path,
        default=CATALOG_DIR,
        metavar="DIR",
        help="a folder of scenario files, yours for your project (default: the rig's chaos/)",
    )
    schema.add_flags(chaos, TargetSettings, "your project (for every scenario file that omits it)")
    _add_transports(chaos)
    _add_reports(chaos)
    _add_jobs(chaos)
    chaos.add_argument(
        "--no-fairness", action="store_true", help="skip the prefetch fairness section"
    )
    _add_common(chaos)

    fair = _command(commands, "fairness", "compare prefetch configurations on a burst")
    fair.add_argument(
        "--only",
        nargs="+",
        metavar="CONFIG",
        help="run only these configurations: " + ", ".join(fairness.CONFIG_NAMES),
    )
    schema.add_flags(fair, fairness.Workload, "workload")
    fair.add_argument("--json", type=Path, metavar="PATH", help="write the comparison as JSON here")
    _add_reports(fair)
    _add_common(fair)

    soak = _command(commands, "soak", "run the catalog N times and count wrong verdicts")
    soak.add_argument("--runs", type=int, default=20, metavar="N", help="how many catalog runs")
    soak.add_argument("--json", type=Path, metavar="PATH", help="write the tally as JSON here")
    soak.add_argument("--only", nargs="+", metavar="SCENARIO", help="soak only these scenarios")
    _add_transports(soak)
    _add_jobs(soak)
    _add_reports(soak)  # a folder per soak run with a wrong verdict
    _add_common(soak)

    explore = _command(commands, "explore", "random fault schedules, a property, shrinking")
    schema.add_flags(explore, ExploreSettings, "exploration")
    schema.add_flags(explore, Settings, "the workload's settings (--fault is drawn, not given)")
    _add_reports(explore)
    _add_common(explore)

    check = _command(commands, "check", "re-check a stored run's history, offline")
    check.add_argument("path", type=Path, help="a report folder, or the history.jsonl in one")

    _command(commands, "clean", "remove leftovers of interrupted runs")
    return parser


class Printer:
    """Prints each result as it arrives: compact, aligned, with its replay when it did not pass."""

    def __init__(self, names: list[str]) -> None:
        self.width = max(map(len, names), default=10)

    def __call__(self, row: dict[str, Any], replay: str | None = None) -> None:
        for line in summary.entry(row, self.width, replay):
            # Markup is ours; the reasons may hold brackets, which stay as they are.
            console.print(line, overflow="ignore", crop=False)


def _replay(row: dict[str, Any], backend: str, catalog: bool) -> str:
    settings = make_settings(**row["settings"])
    return replay_command(row["scenario"], settings, backend, catalog)


def command_list() -> int:
    for scenario in load_catalog().values():
        requires = f" (needs {', '.join(scenario.requires)})" if scenario.requires else ""
        console.print(
            f"[bold]{scenario.name}[/]{requires}\n  {' '.join(scenario.description.split())}"
        )
        for transport in TRANSPORTS:
            variant = scenario.on(transport)
            note = f"skipped: {variant.skip}" if variant.skip else variant.why
            if note:
                console.print(f"  [dim]on {transport}:[/] {' '.join(note.split())}")
    console.print("\n[bold]settings[/] (scenario files' [settings] keys, `run` flags, markers):")
    for name, default, text in schema.describe(Settings):
        console.print(f"  {name} = {default}: {text}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    flags = schema.given_flags(args, Settings)
    if args.scenario:
        transport = flags.pop("transport", DEFAULT_TRANSPORT)  # a scenario runs on either
        if flags:
            raise BadInput(
                f"scenario {args.scenario} fixes its own settings; drop the flags "
                f"({', '.join(schema.flag_name(f) for f in flags)}) or the name"
            )
        scenario = find(args.scenario, transport)
    else:
        settings = make_settings(**pin_project_dir(flags))
        scenario = Scenario("matrix", "a cell of the matrix", settings, None)
    resolve(scenario.settings)  # an app that does not import, an unknown task: said before starting
    started = time.time()
    with progress("starting", args.verbose) as update, session(args.backend, update) as runner:
        results, skipped = run_scenarios(runner, [scenario], update)
        info, engine = runner.backend.info, runner.services.database_engine
    backend = info.name
    row = results[0].as_json() if results else skipped[0]
    Printer([scenario.name])(row)
    if results and row["verdict"] in ("fail", "unknown", "error"):
        # The run folder goes with the backend: keep what explains the verdict.
        header = report.header(info, started, engine)
        kept = report.write_reports(report.new_report_dir(), results, [], header)
        console.print(f"kept: the workers' logs and the history in {kept}/", markup=False)
    for task, options in row.get("effective", {}).items():
        shown = ", ".join(f"{name}={value}" for name, value in options.items())
        console.print(f"effective: {task}: {shown}", markup=False)
    if results and scenario.settings.tasks <= EXPLAINED_TASKS:
        for line in explain(results[0].history):
            console.print("  " + line, markup=False, overflow="ignore", crop=False)
    for line in ["replay:", *summary.pasteable(_replay(row, backend, bool(args.scenario)), "  ")]:
        console.print(line, markup=False, overflow="ignore", crop=False)
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))
    return 0 if row["verdict"] in ("pass", "observed", "skipped") else 1


def command_chaos(args: argparse.Namespace) -> int:
    defaults = pin_project_dir(schema.given_flags(args, TargetSettings))
    ours = args.catalog.resolve() == CATALOG_DIR.resolve()
    if defaults and ours:
        raise BadInput(
            "the project flags go with --catalog: the rig's own scenarios are about exam_app"
        )
    catalog = load_catalog(args.catalog, defaults)
    scenarios = on_transports(_only(catalog, args.only), _transports(args))
    started = time.time()
    fair: dict[str, Any] | None = None
    with progress("starting", args.verbose) as update, session(args.backend, update) as runner:
        backend = runner.backend.info.name
        printer = Printer([scenario.label for scenario in scenarios])
        done: list[str] = []

        def say(message: str) -> None:
            update(f"[{len(done) + 1}/{len(scenarios)}] {message}")

        def show(row: dict[str, Any]) -> None:
            done.append(row["scenario"])
            failed = row["verdict"] in ("fail", "unknown", "error")
            printer(row, _replay(row, backend, catalog=ours) if failed else None)

        results, skipped = run_scenarios(runner, scenarios, say, show, args.jobs)
        info = runner.backend.info
        if not (args.only or args.no_fairness or not ours):  # fairness is about exam_app
            fair = _fairness_on(runner, _transports(args), update)
        header = report.header(info, started, runner.services.database_engine)
    directory = report.write_reports(
        report.new_report_dir(args.reports), results, skipped, header, fair
    )
    rows = [r.as_json() for r in results] + skipped
    fair_complete = True
    if fair is not None:
        configs = fair["summary"]["configs"]
        console.print(report.fairness_table(configs, f"prefetch fairness on {info.name}"))
        fair_complete = all(c["complete"] for c in configs)
        if not fair_complete:
            err.print("fairness: some runs did not finish; replay: python -m rig fairness")
    console.print(f"{summary.tally(rows)} on {info.name}; report: {directory / 'report.html'}")
    return 0 if all(r.outcome.verdict == "pass" for r in results) and fair_complete else 1


def _only(catalog: dict[str, Scenario], names: list[str] | None) -> list[Scenario]:
    """The scenarios --only names (default: the whole catalog), in the order given."""
    for unknown in set(names or []) - set(catalog):
        raise BadInput(f"unknown scenario {unknown!r}; known: {', '.join(catalog)}")
    return [catalog[name] for name in names] if names else list(catalog.values())


def _fairness_on(runner: Runner, transports: list[str], update: Progress) -> dict[str, Any]:
    """The fairness section of a catalog run: every configuration on each transport."""
    results: list[fairness.FairnessResult] = []
    for transport in transports:
        workload = fairness.Workload(transport=transport)
        chosen = fairness.select_configs(None, transport)
        results += fairness.run_fairness(runner, chosen, workload, update)
    summary = fairness.as_json(results, fairness.Workload(), runner.backend.info.name)
    summary["settings"]["transport"] = transports  # each configuration names its own too
    return {"summary": summary, "results": results}


def command_fairness(args: argparse.Namespace) -> int:
    workload = schema.make(fairness.Workload, schema.given_flags(args, fairness.Workload))
    configs = fairness.select_configs(args.only, workload.transport)
    started = time.time()
    with progress("starting", args.verbose) as update, session(args.backend, update) as runner:
        results = fairness.run_fairness(runner, configs, workload, update)
        info = runner.backend.info
        database = runner.services.database_engine
    fair_summary = fairness.as_json(results, workload, info.name)
    header = report.header(info, started, database)
    fair = {"summary": fair_summary, "results": results}
    directory = report.write_reports(report.new_report_dir(args.reports), [], [], header, fair)
    console.print(
        report.fairness_table(fair_summary["configs"], f"prefetch fairness on {info.name}")
    )
    console.print(fairness.describe(workload))
    console.print(f"report: {directory / 'report.html'}, picture: {directory / 'fairness.svg'}")
    if args.json:
        args.json.write_text(json.dumps(fair_summary, indent=2))
    if not all(c["complete"] for c in fair_summary["configs"]):
        err.print("some runs did not finish: their figures are partial (see the report)")
        return 1
    return 0


def command_soak(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise BadInput(f"--runs {args.runs}: must be at least 1")
    scenarios = on_transports(_only(load_catalog(), args.only), _transports(args))
    wrong: Counter[str] = Counter()
    verdicts: dict[str, Counter[str]] = {s.label: Counter() for s in scenarios}
    to_verdict: dict[str, list[float]] = {s.label: [] for s in scenarios}
    seconds: list[float] = []
    with progress("starting", args.verbose) as update, session(args.backend, update) as runner:
        for run in range(1, args.runs + 1):
            started = time.time()
            say = lambda message, run=run: update(f"soak run {run}/{args.runs}: {message}")  # noqa: E731
            results, skipped = run_scenarios(runner, scenarios, say, jobs=args.jobs)
            seconds.append(time.time() - started)
            for result in results:
                verdicts[result.name][result.outcome.verdict] += 1
                to_verdict[result.name].append(result.seconds)
                if result.outcome.verdict != "pass":
                    wrong[result.name] += 1
            for row in skipped:
                verdicts[row["scenario"]]["skipped"] += 1
            not_pass = [r for r in results if r.outcome.verdict != "pass"]
            console.print(f"run {run}: {len(not_pass)} wrong, {seconds[-1]:.1f} s")
            for result in not_pass:  # why, in one line each
                reason = (result.outcome.reasons or ["no reason given"])[0]
                console.print(f"  {result.name}: {result.outcome.verdict}: {reason}")
            if not_pass:  # a wrong verdict in a soak is rare: keep what explains it
                engine, note = runner.services.database_engine, f"soak run {run} of {args.runs}"
                header = report.header(runner.backend.info, started, engine, note)
                folder = Path(f"{report.new_report_dir(args.reports)}-soak-run{run}")
                kept = report.write_reports(folder, not_pass, [], header)
                console.print(f"  kept: their workers' logs and histories in {kept}/", markup=False)
        backend = runner.backend.info.name
    tally = {
        "backend": backend,
        "runs": args.runs,
        "seconds_per_run": [round(s, 1) for s in seconds],
        "scenarios": {
            name: {
                "wrong": wrong[name],
                "verdicts": dict(v),
                "median_s": round(statistics.median(to_verdict[name]), 1)
                if to_verdict[name]
                else None,
            }
            for name, v in verdicts.items()
        },
    }
    for name, entry in tally["scenarios"].items():
        median = f", median {entry['median_s']} s" if entry["median_s"] is not None else ""
        console.print(
            f"{name}: {entry['wrong']} wrong of {args.runs} ({entry['verdicts']}){median}"
        )
    if args.json:
        args.json.write_text(json.dumps(tally, indent=2))
    return 0 if not wrong else 1


def command_explore(args: argparse.Namespace) -> int:
    plan = schema.make(ExploreSettings, schema.given_flags(args, ExploreSettings))
    flags = schema.given_flags(args, Settings)
    if "fault" in flags:
        raise BadInput("explore draws its faults from --faults; drop --fault")
    settings = make_settings(**pin_project_dir(explore.DEFAULTS | flags))
    target = resolve(settings)
    if plan.expect in properties.NEEDS_ROWS and not target.effects:
        raise BadInput(f"expect={plan.expect} counts rows: give --effects for your task")
    seed = plan.seed or random.SystemRandom().randrange(1, 1_000_000)
    steps = explore.parse_schedule(plan.schedule) or explore.generate(
        seed,
        plan.fault_names(),
        explore.points_for(target),
        plan.duration,
        plan.fault_interval,
    )
    duration = max(plan.duration, steps[-1].at_s + 2.0) if steps else plan.duration
    source = "the given schedule" if plan.schedule else f"seed {seed}"
    console.print(f"explore: {len(steps)} fault(s) over {duration:g} s from {source}")
    started = time.time()
    with progress("starting", args.verbose) as update, session(args.backend, update) as runner:
        explore.check_capabilities(runner, sorted({step.fault for step in steps}))
        backend, database = runner.backend.info, runner.services.database_engine
        first = explore.explore_run(
            runner, "explore", settings, steps, duration, plan.expect, update
        )
        shrunk = None
        if first.verdict == "fail" and plan.shrink and not plan.schedule:
            shrunk = explore.shrink(runner, first, settings, max_runs=8, progress=update)
    replay = explore.replay_command(settings, plan, seed, backend.name)
    results = [first.result] + ([shrunk.last_failure.result] if shrunk else [])
    header = {
        **report.header(backend, started, database),
        "explore": explore.summary(first, shrunk, replay),
    }
    directory = report.write_reports(report.new_report_dir(args.reports), results, [], header)
    for line in explore.describe(first, shrunk, replay, directory):
        console.print(line, markup=False, overflow="ignore", crop=False)
    return 0 if first.verdict == "pass" else 1


def command_check(args: argparse.Namespace) -> int:
    rechecked = list(stored.recheck(args.path))
    printer = Printer([name for name, _, _ in rechecked])
    changed = []
    for name, said, row in rechecked:
        printer(row)
        if said and said != row["verdict"]:
            changed.append(f"{name}: the run said {said}, the checker says {row['verdict']}")
    for line in changed:
        err.print(line)
    rows = [row for _, _, row in rechecked]
    same = "" if changed else ", every verdict as the run gave it"
    console.print(f"{summary.tally(rows)}{same}")
    return 0 if not changed and all(r["verdict"] in ("pass", "observed") for r in rows) else 1


def command_clean() -> int:
    from rig.backends.local import DATABASE_SERVER_ENV
    from rig.backends.run_dir import remove_stale_runs

    cleaned = remove_stale_runs()
    console.print(f"local: removed {len(cleaned)} interrupted run(s)")
    lent = os.environ.get(DATABASE_SERVER_ENV)
    if lent:  # a server the user lent the rig keeps none of its databases
        from rig.store import drop_databases

        dropped = drop_databases(lent)
        console.print(f"{DATABASE_SERVER_ENV}: dropped {', '.join(dropped) or 'no rig_* database'}")
    from rig.backends.select import engine_answers

    if engine_answers()[0]:
        from rig.backends.docker import DockerBackend

        backend = DockerBackend("clean")
        backend.remove_leftovers()
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
        "explore": lambda: command_explore(args),
        "check": lambda: command_check(args),
        "clean": command_clean,
    }
    return run_command(commands[args.command])
