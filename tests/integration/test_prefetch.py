"""Prefetch fairness: the metrics on hand-written spans (pure), and the seed's
claims on real workers (marker `fairness`)."""

from __future__ import annotations

import pytest

from rig import fairness
from rig.runner import Runner

CLAIMED = ["early-ack", "late-ack", "disable-prefetch"]
# Prefetch on RabbitMQ is basic.qos per consumer; worker_disable_prefetch is Redis-only.
CLAIMED_ON = {"redis": CLAIMED, "rabbitmq": CLAIMED[:2]}
ROUNDS = {"burst": 30, "rounds": 2}


@pytest.fixture(
    scope="module",
    params=[(b, t) for b in ("docker", "local") for t in CLAIMED_ON],
    ids=lambda param: "-".join(param),
)
def comparison(request: pytest.FixtureRequest) -> dict[str, fairness.FairnessResult]:
    backend, transport = request.param
    runner: Runner = request.getfixturevalue(f"{backend}_runner")
    configs = fairness.select_configs(CLAIMED_ON[transport], transport)
    workload = fairness.Workload(transport=transport, **ROUNDS)
    results = fairness.run_fairness(runner, configs, workload, print)
    return {result.config.name: result for result in results}


def _complete(result: fairness.FairnessResult) -> fairness.FairnessResult:
    assert result.complete, f"{result.config.name}: not every task finished (see its history)"
    return result


@pytest.mark.fairness
def test_throughput_has_one_figure_per_round_and_reports_their_median(comparison: dict) -> None:
    for result in comparison.values():
        rounds = _complete(result).throughput_rounds
        assert len(rounds) == ROUNDS["rounds"] and all(rate > 0 for rate in rounds), rounds
        assert min(rounds) <= result.throughput_per_s <= max(rounds)
    # Each round against the first configuration's in the same round.
    first = comparison[CLAIMED[0]].throughput_rounds
    for result in comparison.values():
        expected = [rate / base for rate, base in zip(result.throughput_rounds, first, strict=True)]
        assert result.relative_rounds == pytest.approx(expected)


@pytest.mark.fairness
def test_early_ack_holds_a_second_task_while_another_worker_idles(comparison: dict) -> None:
    metrics = _complete(comparison["early-ack"]).metrics
    assert metrics.max_held_by_one_worker == 2
    assert metrics.held_behind >= 1
    assert metrics.unfair_wait_s > 0.5, metrics


@pytest.mark.fairness
def test_late_ack_and_disabled_prefetch_hold_one_task_and_never_wait_unfairly(
    comparison: dict,
) -> None:
    for name in set(comparison) - {"early-ack"}:  # late-ack, and disable-prefetch on Redis
        metrics = _complete(comparison[name]).metrics
        assert metrics.max_held_by_one_worker == 1, name
        assert metrics.held_behind == 0, name
        assert metrics.unfair_wait_s == 0.0, name
