"""The template-shaped project's chaos test, through the rig's pytest plugin.

The settings need DATABASE_URL and REDIS_URL: the marker passes the
project's own env file, as a developer would; the rig replaces what they
point at by its own services."""

from typing import Any

import pytest

ENV_FILE = ".envs/.test/.django"
PAYMENTS = "SELECT order_id, count(*) FROM orders_payment GROUP BY order_id"


@pytest.mark.celery_chaos(
    app="config.celery_app:app",
    env_file=ENV_FILE,
    fault="container",
    at="after_commit",
    acks="late",
)
def test_a_kill_after_the_charge_committed_charges_twice(celery_chaos: Any) -> None:
    result = celery_chaos.run(
        "orders.tasks.charge", kwargs={"order_id": "{key}"}, tasks=2, effects=PAYMENTS
    )
    # Late ack: the killed execution's message comes back and charges again.
    assert result.counts.duplicate_rows >= 1, result.explain()
    assert result.counts.missing_rows == 0, result.explain()
