"""Docker workers run the Python minor version of the interpreter that runs
the rig (a Django 6 project needs 3.12 or later): one app image per version,
built offline by scripts/images.sh from the Debian release that ships it."""

from __future__ import annotations

import os
import sys

from rig.errors import BadInput

# Python minor version -> the Debian release whose python3 it is.
RELEASES = {"3.11": "bookworm", "3.13": "trixie"}
DEFAULT_IMAGE = "celery-rig/app:latest"  # the compose file's, Python 3.11


def running() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def worker_image(compose_image: str, version: str | None = None) -> str:
    """The app image for workers of this Python version; an image the user named
    with RIG_APP_IMAGE is theirs to choose, and stands."""
    version = version or running()
    if os.environ.get("RIG_APP_IMAGE") or compose_image != DEFAULT_IMAGE:
        return compose_image
    if version not in RELEASES:
        offered = ", ".join(f"{v} (Debian {release})" for v, release in RELEASES.items())
        raise BadInput(
            f"Python {version}: Docker workers run the rig's own Python version, and the "
            f"images provide {offered}; run the rig with one of those, or use --backend local"
        )
    return f"{compose_image.rsplit(':', 1)[0]}:py{version}"
