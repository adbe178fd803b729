"""Which app image Docker workers run: the rig's own Python minor version."""

from __future__ import annotations

import pytest

from rig.backends.python_images import DEFAULT_IMAGE, worker_image
from rig.errors import BadInput


@pytest.mark.parametrize(("version", "image"), [("3.11", "py3.11"), ("3.13", "py3.13")])
def test_each_offered_version_has_its_image(
    version: str, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RIG_APP_IMAGE", raising=False)
    assert worker_image(DEFAULT_IMAGE, version) == f"celery-rig/app:{image}"


def test_a_version_no_image_provides_is_one_line_naming_those_that_can(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RIG_APP_IMAGE", raising=False)
    with pytest.raises(BadInput) as error:
        worker_image(DEFAULT_IMAGE, "3.12")
    message = str(error.value)
    assert "\n" not in message
    assert "Python 3.12" in message and "3.11 (Debian bookworm)" in message
    assert "3.13 (Debian trixie)" in message and "--backend local" in message


def test_an_image_the_user_named_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIG_APP_IMAGE", "mine/app:1")
    assert worker_image("mine/app:1", "3.12") == "mine/app:1"
