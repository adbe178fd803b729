"""The HTML report from hand-written results: pure, no backend. The last test
renders the page in headless Chromium and reads the screenshot's pixels."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rig.checker import Counts
from rig.history import FAULT, HEAL, LEDGER, SENT, History
from rig.report import VERDICT_WORDS, fault_table, nice_ticks, timeline, write_reports
from rig.runner import Result
from rig.settings import make_settings
from tests.helpers import ROOT
from tests.report_runs import (
    HEADER,
    T0,
    add_attempt,
    killed_then_redelivered,
    sample_results,
)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    results, skipped = sample_results()
    return write_reports(tmp_path / "report", results, skipped, HEADER) / "report.html"


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert found, f"no section for {name}"
    return found.group(1)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_timeline_is_laid_out_from_the_history_alone() -> None:
    t = timeline(killed_then_redelivered())
    assert t.lanes == ["w1", "w2"]
    assert [(b.label, b.state) for b in t.bars] == [
        ("kill-0 #1 on w1", "killed"),
        ("kill-0 #2 on w2", "finished"),
    ]
    assert t.bars[0].end == pytest.approx(0.32)
    assert [(m.label, m.kill) for m in t.marks] == [("container (SIGKILL)", True)]
    assert len(t.links) == 1 and t.links[0].latency == pytest.approx(4.58)
    assert [tick.label for tick in t.ticks] == [f"{s} s" for s in range(7)]
    assert t.span == 6


@pytest.mark.parametrize(
    ("span", "step"), [(0.3, 0.05), (1.0, 0.2), (5.15, 1), (9.0, 2), (31, 5), (400, 50)]
)
def test_ticks_fall_on_round_steps(span: float, step: float) -> None:
    ticks = nice_ticks(span)
    assert 5 <= len(ticks) <= 9
    assert ticks[1].at == pytest.approx(step) and ticks[-1].at >= span


def test_the_report_summarises_then_shows_each_scenario(report: Path) -> None:
    html = report.read_text()
    results, skipped = sample_results()
    rows = [r.as_json() for r in results] + skipped
    seen = Counter(row["verdict"] for row in rows)
    headline = re.search(r'<p class="headline">(.*?)</p>', html, re.S)
    assert headline, "no summary line"
    # In the report's order of verdicts: "1 of 3 passed · 1 crashed · 1 skipped".
    others = [f"{seen[v]} {word}" for v, word in VERDICT_WORDS.items() if v != "pass" and seen[v]]
    assert _text(headline.group(1)) == " · ".join(
        [f"{seen['pass']} of {len(rows)} passed", *others]
    )
    for row in rows:
        assert f'<span class="badge {row["verdict"]}">{row["verdict"]}</span>' in _section(
            html, row["scenario"]
        )
    killed = _section(html, "kill_after_commit")
    assert killed.count('class="lane"') == 2
    assert killed.count('class="bar ') == 2
    assert killed.count('class="bar killed"') == 1 and killed.count('class="bar finished"') == 1
    assert '<g class="kill">' in killed and "container (SIGKILL)" in killed
    assert '<g class="redelivery">' in killed and "redelivered after 4.58 s" in killed
    assert re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', killed)[-1] == "6 s"
    crashed = _section(html, "crashed_run")
    assert "boom" in crashed and 'href="logs/crashed_run-w1.log"' in crashed
    assert (report.parent / "logs" / "crashed_run-w1.log").read_text() == "Traceback: boom\n"


# --- the page as a browser draws it ---------------------------------------------
def test_a_fault_that_lasts_is_shaded_from_its_landing_to_its_heal() -> None:
    """A pause on w1 from its checkpoint to its resume: one window on w1's lane."""
    history = History()
    history.add(SENT, at=T0, task_id="t1", task="create_record", business_key="kill-0")
    add_attempt(history, 1, "w1", 0.05, 4.6)
    pause = {"name": "pause", "target": "w1", "action": "pause", "ends_execution": False}
    history.add(
        FAULT, at=T0 + 0.32, **pause, task_id="t1", attempt=1, point="after_commit",
        checkpoint_at=T0 + 0.3, confirmed_at=T0 + 0.32, landed=True, detail="paused",
    )  # fmt: skip
    history.add(HEAL, at=T0 + 4.3, name="pause", target="w1", action="resume",
                healed_at=T0 + 4.3, detail="resumed")  # fmt: skip
    add_attempt(history, 2, "w2", 2.4, 2.6)
    (window,) = timeline(history).windows
    assert timeline(history).lanes[window.lane] == "w1"
    assert (round(window.start, 2), round(window.end, 2)) == (0.3, 4.3)
    assert window.label == "pause: pause"


def test_two_pauses_in_one_run_are_each_shaded_to_their_own_heal() -> None:
    """Faults can overlap: a heal names its fault's id, not just its kind."""
    history = History()
    history.add(SENT, at=T0, task_id="t1", task="create_record", business_key="kill-0")
    add_attempt(history, 1, "w1", 0.05, 6.0)
    add_attempt(history, 2, "w2", 0.05, 6.0)
    for fault_id, worker, at, healed_at in (("f1", "w1", 0.3, 5.0), ("f2", "w2", 1.0, 2.0)):
        history.add(
            FAULT, at=T0 + at, id=fault_id, name="pause", target=worker, action="pause",
            ends_execution=False, task_id="t1", attempt=1, point="after_commit",
            checkpoint_at=T0 + at, confirmed_at=T0 + at, landed=True, detail="paused",
        )  # fmt: skip
        history.add(HEAL, at=T0 + healed_at, fault_id=fault_id, name="pause", target=worker,
                    action="resume", healed_at=T0 + healed_at, detail="resumed")  # fmt: skip
    windows = timeline(history).windows
    spans = {timeline(history).lanes[w.lane]: (round(w.start, 2), round(w.end, 2)) for w in windows}
    assert spans == {"w1": (0.3, 5.0), "w2": (1.0, 2.0)}


def test_the_by_fault_table_groups_results_by_fault() -> None:
    rows = [
        {"scenario": name, "verdict": "pass", "settings": make_settings(**kw).as_dict(),
         "counts": Counts(lost=lost, redelivered=again,
                          duplicate_external_effects=again * (name == "a_charge")).as_dict()}
        for name, kw, lost, again in [
            ("b_term", {"fault": "term"}, 0, 1),
            ("a_kill", {"fault": "container", "acks": "early"}, 1, 0),
            ("a_charge", {"fault": "container", "at": "after_http"}, 0, 1),
            ("c_term_early", {"fault": "term", "acks": "early"}, 1, 0),
        ]
    ]  # fmt: skip
    table = fault_table(rows)
    assert [(r["fault"], r["scenario"]) for r in table] == [
        ("container", "a_charge"), ("container", "a_kill"), ("term", "b_term"),
        ("term", "c_term_early"),
    ]  # fmt: skip
    assert (table[1]["lost"], table[2]["run_again"]) == (1, 1)
    assert [r["duplicate_effects"] for r in table] == [1, 0, 0, 0]


def test_an_executions_calls_and_emails_are_in_its_tooltip() -> None:
    history = killed_then_redelivered()
    for event in history.events(LEDGER):
        event.data["calls"] = [{"method": "POST", "host": "pay.example", "path": "/v1/charges",
                                "replayed": event.data["attempt"] == 2}]  # fmt: skip
        event.data["emails"] = [{"to": ["k@example.invalid"], "subject": "Your receipt"}]
    first, second = (bar.tooltip for bar in timeline(history).bars)
    assert ", called POST pay.example/v1/charges, emailed k@example.invalid: Your receipt" in first
    assert "/v1/charges (answered from its idempotency key)" in second


def test_a_stored_run_rechecked_offline_gives_its_verdicts(report: Path) -> None:
    """Jepsen's analyze: the stored history and expectation, the current checker."""
    from rig.checker.stored import recheck

    rechecked = {name: (stored, row["verdict"]) for name, stored, row in recheck(report.parent)}
    # The crashed run recorded no events, so it has no history to re-check.
    assert rechecked == {"kill_after_commit": ("pass", "pass")}


def test_with_two_transports_the_report_puts_them_side_by_side(tmp_path: Path) -> None:
    results, _ = sample_results()
    killed = results[0]
    on_rabbitmq = Result(
        name="kill_after_commit@rabbitmq",
        settings=make_settings(fault="container", transport="rabbitmq"),
        expect=killed.expect,
        outcome=killed.outcome,
        history=killed.history,
        seconds=3.1,
    )
    html = write_reports(tmp_path / "two", [killed, on_rabbitmq], [], HEADER)
    text = _text((html / "report.html").read_text())
    assert "Side by side, per transport" in text
    row = re.search(r"kill_after_commit executions (.*?) pass executions (.*?) pass", text)
    assert row, text
    assert row.group(1).startswith("2, lost 0, duplicate rows 1, redelivered after 4.58 s")
    # One transport only: no such section.
    single = write_reports(tmp_path / "one", [killed], [], HEADER) / "report.html"
    assert "Side by side" not in single.read_text()


def test_the_checker_package_rechecks_a_stored_run_without_celery(report: Path) -> None:
    """`check` needs only rig.checker: with Celery, kombu and Django unimportable,
    the stored run is rechecked to the same verdict."""
    script = (
        "import sys\n"
        "sys.modules.update(celery=None, kombu=None, django=None)\n"
        "from pathlib import Path\n"
        "from rig.checker.stored import recheck\n"
        f"for name, stored, row in recheck(Path({str(report.parent)!r})):\n"
        "    print(name, stored, row['verdict'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["kill_after_commit", "pass", "pass"]


def test_two_beats_sending_every_slot_twice_is_work_run_again() -> None:
    counts = Counts(sent=4, executions=4, duplicate_scheduled_runs=2).as_dict()
    settings = make_settings(workload="beat", task="digest", beats=2).as_dict()
    row = {"scenario": "two_beats", "verdict": "pass", "counts": counts, "settings": settings}
    assert fault_table([row])[0]["run_again"] == 2
