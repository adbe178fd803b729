"""Explore instead of enumerate: many tasks flow while faults drawn from a seed
land at random checkpoints and times; a property is checked over the whole
history; a failing schedule is shrunk to the smallest one that still fails.

A schedule is a list of steps, "2.4:container@after_commit": at 2.4 s into
the run, arm after_commit; the next execution to reach it gets the container
kill. The same seed gives the same schedule (what it hits depends on timing,
which is why a failure is shrunk and replayed, not only re-drawn).
"""

from __future__ import annotations

import json
import random
import shlex
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig import schema
from rig.checker import Verdict, properties
from rig.checker.schedule import Step, parse_schedule, schedule_text
from rig.checkpoints import AUTOMATIC, WITHOUT_DJANGO
from rig.errors import BadInput
from rig.history import NOTE
from rig.schema import setting
from rig.settings import Settings, make_settings
from rig.summary import counts_text, pasteable
from rig.target import Target
from rig.terminal import program

if TYPE_CHECKING:  # the runner is imported where a run starts: the command line stays quick
    from rig.plans import RunContext
    from rig.runner import Progress, Result, Runner

# Faults that can strike any worker at any point of a running workload, again and
# again; the others change the whole run (a memory limit, a time limit).
EXPLORABLE = ("container", "pool-child", "term", "deploy", "quit", "pause", "partition")
LAND_WAIT_S = 5.0  # how long a step waits for an execution to reach its point
SENDS_PAST_LAST_STEP_S = 1.5  # tasks still go out this long after the last step begins
SINGLE_STEP_TRIES = 3
# What explore changes from a scenario's defaults: a workload, a fleet that restarts.
DEFAULTS = {"tasks": 200, "workers": 3, "task_seconds": 0.1, "grace": 2.0, "pause_seconds": 3.0}


@dataclass(frozen=True)
class ExploreSettings:
    faults: str = setting("container", f"the faults to draw from, comma-separated: {EXPLORABLE}")
    duration: float = setting(20.0, "seconds of workload and faults", minimum=1)
    fault_interval: float = setting(1.5, "mean seconds between two faults", minimum=0.2)
    seed: int = setting(0, "the schedule's seed (0: a new one, printed)", minimum=0)
    expect: str = setting(
        "no-duplicate-rows",
        f"the property that must hold for the whole run: {', '.join(properties.PROPERTIES)}",
    )
    schedule: str = setting(
        "", "an explicit schedule, SECONDS:FAULT@POINT,... (a shrunk one), instead of a seed"
    )
    shrink: bool = setting(True, "when the property fails, look for the smallest failing schedule")

    def fault_names(self) -> list[str]:
        names = [name.strip() for name in self.faults.split(",") if name.strip()]
        unknown = [name for name in names if name not in EXPLORABLE]
        if unknown or not names:
            raise BadInput(f"faults={self.faults!r}: expected some of {', '.join(EXPLORABLE)}")
        return names

    def validate(self) -> None:
        self.fault_names()
        if self.expect not in properties.PROPERTIES:
            known = ", ".join(properties.PROPERTIES)
            raise BadInput(f"expect={self.expect!r}: expected one of {known}")
        for step in parse_schedule(self.schedule):
            if step.fault not in EXPLORABLE:
                raise BadInput(f"schedule step {step}: {step.fault} is not explorable")


def generate(
    seed: int, faults: list[str], points: tuple[str, ...], duration: float, interval: float
) -> list[Step]:
    """Steps at random times (about `interval` apart), faults and points."""
    rng = random.Random(seed)
    steps, at = [], rng.uniform(0.3, interval)
    while at < duration:
        steps.append(Step(round(at, 2), rng.choice(faults), rng.choice(points)))
        at += rng.uniform(0.5 * interval, 1.5 * interval)
    return steps


@dataclass
class ScheduleRun:
    """The plan of one explore run (rig.plans.Plan): tasks sent at an even rate
    over the run while the steps land; a worker a step ended starts again."""

    settings: Settings
    steps: list[Step]
    duration: float
    landed: list[Step] = field(default_factory=list)
    send_error: Exception | None = None

    def execute(self, run: RunContext) -> None:
        for step in self.steps:
            if step.at_s <= 0:
                run.arm(self._settings(step))  # before the first task goes out
        started = time.time()
        sender = threading.Thread(target=self._send_all, args=(run, started), daemon=True)
        sender.start()
        for number, step in enumerate(self.steps, 1):
            time.sleep(max(0.0, started + step.at_s - time.time()))
            run.progress(f"explore: step {number}/{len(self.steps)} {step}")
            step_settings = self._settings(step)
            if step.at_s > 0:  # a step at 0 s was armed before the first task
                run.arm(step_settings)
            # A fault that lasts (a pause) heals on its own timer: the next step
            # may land meanwhile.
            if run.inject(step_settings, wait_s=LAND_WAIT_S) is not None:
                self.landed.append(step)
            self._restart_the_dead(run)
        sender.join()
        if self.send_error is not None:
            raise self.send_error

    def _settings(self, step: Step) -> Settings:
        return replace(
            self.settings, fault=step.fault, at=step.point, restart=step.fault == "container"
        )

    def _send_all(self, run: RunContext, started: float) -> None:
        # Spread past the last step, so every step finds executions to land on
        # (sends that ended before the late steps left them nothing to hit on a
        # machine that drains fast: the late steps' landing depended on its speed).
        last_step_s = self.steps[-1].at_s if self.steps else 0.0
        span = min(self.duration, max(0.8 * self.duration, last_step_s + SENDS_PAST_LAST_STEP_S))
        gap = span / max(1, self.settings.tasks)
        try:
            for index in range(self.settings.tasks):
                time.sleep(max(0.0, started + index * gap - time.time()))
                run.send(index)
        except Exception as error:  # noqa: BLE001 - raised again by execute(), after the steps
            self.send_error = error

    @staticmethod
    def _restart_the_dead(run: RunContext) -> None:
        """An orchestrator's part: a worker a fault ended starts again."""
        for name in run.crew.names:
            why = run.backend.failed_start([name])
            if why:
                run.backend.restart_worker(name)
                run.history.add(NOTE, text=f"{name} started again ({why})")


@dataclass
class Exploration:
    """One explore run and its property."""

    result: Result
    steps: list[Step]
    landed: list[Step]
    expect: str
    violations: list[properties.Violation]

    @property
    def verdict(self) -> Verdict:
        return self.result.outcome.verdict

    def record(self) -> None:
        """Put the property's verdict and what explains it into the result, so its
        JSON, the report and `check` carry them."""
        self.result.outcome = properties.judge(
            self.result.outcome, self.violations, len(self.landed)
        )
        self.result.extra = {
            "expect": self.expect,
            "schedule": schedule_text(self.steps),
            "landed": schedule_text(self.landed),
            "violations": [asdict(v) for v in self.violations],
        }


def explore_run(
    runner: Runner,
    name: str,
    settings: Settings,
    steps: list[Step],
    duration: float,
    expect: str,
    progress: Progress,
) -> Exploration:
    plan = ScheduleRun(settings, steps, duration)
    result = runner.run(name, settings, None, progress, plan=plan)
    found = properties.violations(result.history, expect)
    exploration = Exploration(result, steps, plan.landed, expect, found)
    exploration.record()
    return exploration


def points_for(target: Target) -> tuple[str, ...]:
    return AUTOMATIC if target.django else WITHOUT_DJANGO


def check_capabilities(runner: Runner, faults: list[str]) -> None:
    for fault in faults:
        from rig.catalog import cannot

        lacking = cannot(runner, fault)
        if lacking:
            raise BadInput(f"{fault}: {lacking}")


# --- shrinking -------------------------------------------------------------
@dataclass
class Shrunk:
    steps: list[Step]
    tasks: int
    runs: int
    seconds: float
    last_failure: Exploration


def shrink(
    runner: Runner,
    failing: Exploration,
    settings: Settings,
    max_runs: int,
    progress: Progress,
) -> Shrunk:
    """Fewer faults, then fewer tasks, while the property still fails (a greedy
    delta debugging: the landed steps that struck a broken task each alone,
    else halves of the landed steps; then the fewest tasks that still fail)."""
    started, runs = time.time(), 0
    best_steps, best_tasks, best = failing.landed or failing.steps, settings.tasks, failing

    def still_fails(steps: list[Step], tasks: int) -> Exploration | None:
        nonlocal runs
        runs += 1
        rebased = _rebased(steps)
        duration = rebased[-1].at_s + 2.0
        trial = replace(settings, tasks=tasks)
        progress(f"shrinking: try {runs}, {len(steps)} fault(s), {tasks} task(s)")
        attempt = explore_run(
            runner, f"shrink-{runs}", trial, rebased, duration, failing.expect, progress
        )
        return attempt if attempt.verdict == "fail" else None

    if len(best_steps) > 1:
        # The steps that struck a broken task, each alone (the usual answer) ...
        hit = _steps_that_hit(failing, {v.task_id for v in failing.violations})
        for step in hit[:SINGLE_STEP_TRIES]:
            if runs >= max_runs:
                break
            found = still_fails([step], best_tasks)
            if found is not None:
                best_steps, best = [step], found
                break
    # ... else halves while one half still fails alone (delta debugging's first cut).
    while len(best_steps) > 1 and runs < max_runs:
        middle = len(best_steps) // 2
        for part in (best_steps[:middle], best_steps[middle:]):
            found = still_fails(part, best_tasks) if runs < max_runs else None
            if found is not None:
                best_steps, best = part, found
                break
        else:
            break
    # The fewest tasks first: one task is the usual answer, and the cheapest run.
    for fewer in sorted({1, best_tasks // 8, best_tasks // 2} - {0, best_tasks}):
        if runs >= max_runs:
            break
        found = still_fails(best_steps, fewer)
        if found is not None:
            best_tasks, best = fewer, found
            break
    return Shrunk(_rebased(best_steps), best_tasks, runs, time.time() - started, best)


def _rebased(steps: list[Step]) -> list[Step]:
    """The same steps, the first at 0 s (armed before any task is sent), gaps kept."""
    first = steps[0].at_s
    return [replace(step, at_s=round(step.at_s - first, 2)) for step in steps]


def _steps_that_hit(exploration: Exploration, task_ids: set[str]) -> list[Step]:
    """The landed steps whose fault struck one of these tasks, in order: each
    landed step recorded exactly one fault, in the same order."""
    faults = [e.data for e in exploration.result.history.events("fault")]
    return [
        step
        for step, fault in zip(exploration.landed, faults, strict=False)
        if fault.get("task_id") in task_ids
    ]


# --- what the user sees ------------------------------------------------------
def replay_command(settings: Settings, plan: ExploreSettings, seed: int, backend: str) -> str:
    """The command that draws the same schedule again (or runs the given one)."""
    # Explore's own defaults are the base (it draws its faults: no --fault).
    base = make_settings(**DEFAULTS)
    flags = schema.as_flags(settings, base) + schema.as_flags(replace(plan, seed=seed))
    words = [shlex.quote(part) for part in [*flags, "--backend", backend]]
    return " ".join([program(), "explore", *words])


def shrunk_replay(replay: str, shrunk: Shrunk) -> str:
    """The whole run's replay with the smallest schedule and task count instead."""
    words = shlex.split(replay)
    for flag, value in (
        ("--tasks", str(shrunk.tasks)),
        ("--schedule", schedule_text(shrunk.steps)),
        ("--duration", f"{shrunk.steps[-1].at_s + 2.0:g}"),
    ):
        if flag in words:
            words[words.index(flag) + 1] = value
        else:
            words[-2:-2] = [flag, value]
    words = [w for w in words if w not in ("--shrink",)]
    if "--seed" in words:
        del words[words.index("--seed") : words.index("--seed") + 2]
    return " ".join(shlex.quote(word) for word in [*words[:-2], "--no-shrink", *words[-2:]])


def rates(exploration: Exploration) -> tuple[float, float]:
    """Completed tasks and landed faults per minute of the run."""
    minutes = max(exploration.result.seconds, 1e-6) / 60
    completed = exploration.result.outcome.counts.completed
    return completed / minutes, len(exploration.landed) / minutes


def summary(first: Exploration, shrunk: Shrunk | None, replay: str) -> dict[str, Any]:
    tasks_per_min, faults_per_min = rates(first)
    return {
        "expect": first.expect,
        "verdict": first.verdict,
        "schedule": schedule_text(first.steps),
        "faults_drawn": len(first.steps),
        "faults_landed": len(first.landed),
        "tasks": first.result.outcome.counts.sent,
        "tasks_per_minute": round(tasks_per_min, 1),
        "faults_per_minute": round(faults_per_min, 1),
        "violations": len(first.violations),
        "replay": replay,
        "shrunk": None
        if shrunk is None
        else {
            "schedule": schedule_text(shrunk.steps),
            "tasks": shrunk.tasks,
            "runs": shrunk.runs,
            "seconds": round(shrunk.seconds, 1),
            "replay": shrunk_replay(replay, shrunk),
        },
    }


def describe(first: Exploration, shrunk: Shrunk | None, replay: str, directory: Path) -> list[str]:
    """The run in lines for the terminal; writes the smallest schedule's scenario file."""
    counts = first.result.outcome.counts
    landed = Counter(step.fault for step in first.landed)
    kinds = ", ".join(f"{name} {n}" for name, n in landed.items())
    tasks_per_min, faults_per_min = rates(first)
    holds = {"pass": "HOLDS", "fail": "FAILS"}.get(first.verdict, first.verdict.upper())
    lines = [
        f"{first.expect} ({properties.PROPERTIES[first.expect][0]}) {holds}",
        f"  over {counts.sent} tasks, {counts.executions} executions: {len(first.steps)} "
        f"fault(s) drawn, {len(first.landed)} landed" + (f" ({kinds})" if kinds else ""),
        f"  {tasks_per_min:.0f} tasks/min, {faults_per_min:.0f} faults/min, "
        f"{first.result.seconds:.1f} s",
        # Every count that is not zero, whatever the property: a lost task shows
        # here even when the property was about duplicates.
        f"  {counts_text(counts.as_dict())}",
    ]
    if first.verdict in ("unknown", "error"):
        lines += [f"  - {reason}" for reason in first.result.outcome.reasons]
    if first.violations:
        lines.append(f"  {len(first.violations)} task(s) broke it, first ones explained:")
        broken = {v.task_id for v in first.violations[:3]}
        from rig.explain import explain

        lines += ["    " + line for line in explain(first.result.history, broken)]
    lines += ["replay:", *pasteable(replay, "  ")]
    if shrunk is not None:
        lines.append(
            f"shrunk in {shrunk.seconds:.1f} s ({shrunk.runs} runs) to {len(shrunk.steps)} "
            f"fault(s) and {shrunk.tasks} task(s): {schedule_text(shrunk.steps)}"
        )
        lines += ["replay the smallest:", *pasteable(shrunk_replay(replay, shrunk), "  ")]
        if len(shrunk.steps) == 1:
            path = directory / f"explored_{first.expect.replace('-', '_')}.toml"
            path.write_text(scenario_file(first, shrunk))
            lines += ["scenario file (drop it into chaos/):", f"  {path}"]
    lines.append(f"report: {directory / 'report.html'}")
    return lines


# The counts that can show each property broken, for a scenario file's
# [expect]: the first the failing run has, else the last.
SHOWN_BY = {
    "no-lost": ("lost",),
    "at-most-once": ("redelivered",),
    "no-duplicate-rows": ("duplicate_rows",),
    "exactly-once-effects": (
        "duplicate_rows",
        "duplicate_external_effects",
        "duplicate_emails",
        "missing_rows",
    ),
}


def scenario_file(first: Exploration, shrunk: Shrunk) -> str:
    """A catalog scenario that reproduces the smallest failing schedule."""
    (step,) = shrunk.steps
    settings = replace(
        shrunk.last_failure.result.settings, fault=step.fault, at=step.point, tasks=shrunk.tasks
    )
    failed = shrunk.last_failure.result.outcome.counts
    shown = SHOWN_BY[first.expect]
    count = next((c for c in shown if getattr(failed, c)), shown[-1])
    values = {k: v for k, v in settings.as_dict().items() if v not in (None, "", ())}
    lines = [
        'description = """',
        f"Found by `explore`: {first.expect} ({properties.PROPERTIES[first.expect][0]})",
        f"breaks with one {step.fault} at {step.point} over {shrunk.tasks} task(s).",
        '"""',
        "[settings]",
        *(f"{key} = {_toml(value)}" for key, value in values.items()),
        "",
        "[expect]",
        f"sent = {shrunk.tasks}",
        f"{count} = [1, {shrunk.tasks}]",
    ]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
