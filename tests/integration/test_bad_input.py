"""Bad input ends in one clear line and a non-zero exit, never a traceback.

Each case runs the real command line in a subprocess, as a user would.
"""

from __future__ import annotations

import pytest

from tests.helpers import assert_clear_error, rig


@pytest.mark.docker
def test_a_missing_image_names_the_command_that_builds_it(docker_runner: object) -> None:
    # docker_runner: only where an engine answers (and required to in CI).
    result = rig(
        "run",
        "early_ack_kill_before_write",
        "--backend",
        "docker",
        env={"RIG_APP_IMAGE": "celery-rig/no-such-image:latest"},
    )
    assert_clear_error(result, 3, "celery-rig/no-such-image:latest is missing", "make images")
