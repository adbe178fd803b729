"""Bounded waits: poll a probe until it says there is nothing left to wait for.

A probe returns what is still missing (a count, a set, a reason); anything
falsy means done. The wait returns the probe's last answer, so the caller
can say exactly what never happened instead of hanging or guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

Missing = TypeVar("Missing")


def until_nothing_missing(
    probe: Callable[[], Missing], timeout_s: float, interval_s: float = 0.2
) -> Missing:
    return retry(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(interval_s),
        retry=retry_if_result(bool),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )(probe)()
