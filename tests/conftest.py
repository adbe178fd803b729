"""Markers: one per catalog scenario, `chaos` for all of them, and `matrix`
for an ad-hoc cell whose arguments are validated by rig.settings, so a typo
in a marker is a collection error, not a silent default."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from rig.backends.select import engine_answers
from rig.catalog import session
from rig.errors import BadInput
from rig.runner import Runner
from rig.scenarios import load_catalog
from rig.schema import bind
from rig.settings import Settings
from rig.transports import TRANSPORTS


def pytest_configure(config: pytest.Config) -> None:
    for scenario in load_catalog().values():
        config.addinivalue_line("markers", f"{scenario.name}: chaos scenario {scenario.name}")
    for transport in TRANSPORTS:
        config.addinivalue_line("markers", f"{transport}: a catalog scenario on {transport}")
    config.addinivalue_line(
        "markers", "matrix(**settings): run this cell of the matrix (see rig.settings)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("matrix")
        if marker is None:
            continue
        try:
            matrix_settings(marker, item.nodeid)
        except BadInput as error:
            raise pytest.UsageError(str(error)) from None


def matrix_settings(marker: pytest.Mark, where: str) -> Settings:
    """The marker's arguments bound to the settings' signature: a typo is an error."""
    return bind(Settings, marker.args, marker.kwargs, f"{where}: @pytest.mark.matrix")


def _docker_or_skip() -> None:
    answers, why = engine_answers()
    if answers:
        return
    # CI sets RIG_REQUIRE_DOCKER=1: there a missing engine is a failure, not a skip.
    if os.environ.get("RIG_REQUIRE_DOCKER") == "1":
        pytest.fail(f"RIG_REQUIRE_DOCKER=1 but no Docker engine answers: {why}")
    pytest.skip(f"no Docker engine answers ({why}); the local backend covers this machine")


@pytest.fixture(scope="session")
def docker_runner() -> Iterator[Runner]:
    _docker_or_skip()
    with session("docker", print) as runner:
        yield runner


@pytest.fixture(scope="session")
def local_runner() -> Iterator[Runner]:
    with session("local", print) as runner:
        yield runner


@pytest.fixture
def runner(request: pytest.FixtureRequest) -> Runner:
    """The runner of the backend this test is parametrized with."""
    return request.getfixturevalue(f"{request.param}_runner")
