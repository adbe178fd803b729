"""A project's extra packages for Docker workers, with no registry: a layer over
the rig's app image, built from a wheelhouse downloaded on the host, cached by
the requirements' content (as scripts/images.sh builds the app image itself)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

from rig.backends.base import last_line
from rig.backends.python_images import running
from rig.errors import BadInput, EnvironmentProblem

TAG = "celery-rig/app-extra"
# The image's interpreter: CPython of the rig's own minor version on x86_64
# (rig.backends.python_images).
PLATFORM = [
    *("--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64"),
    *("--platform", "manylinux_2_17_x86_64", "--python-version", running()),
    *("--implementation", "cp", "--only-binary=:all:"),
]
DOCKERFILE = """\
FROM {base}
USER root
COPY wheelhouse /wheelhouse
COPY requirements.txt /tmp/extra-requirements.txt
RUN /venv/bin/pip install --no-cache-dir --no-index --find-links /wheelhouse \\
      -r /tmp/extra-requirements.txt && rm -rf /wheelhouse /tmp/extra-requirements.txt
USER app
"""


def image_with(client: docker.DockerClient, base: str, requirements: str) -> str:
    """The tag of `base` plus these requirements, built once per content and base."""
    path = Path(requirements)
    if not path.is_file():
        raise BadInput(f"requirements {requirements}: no such file")
    base_id = client.images.get(base).id
    digest = hashlib.sha256(path.read_bytes() + base_id.encode()).hexdigest()[:12]
    tag = f"{TAG}:{digest}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="celery-rig-extra-") as context:
        download = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                *PLATFORM,
                "-r",
                str(path),
                "-d",
                f"{context}/wheelhouse",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if download.returncode != 0:
            last = last_line(download.stderr)
            raise EnvironmentProblem(f"requirements {requirements}: download failed: {last}")
        Path(context, "requirements.txt").write_bytes(path.read_bytes())
        Path(context, "Dockerfile").write_text(DOCKERFILE.format(base=base))
        try:
            client.images.build(path=context, tag=tag, rm=True, forcerm=True)
        except docker.errors.BuildError as error:
            log = "".join(str(chunk.get("stream", "")) for chunk in error.build_log)
            last = last_line(log) if log.strip() else str(error)
            raise EnvironmentProblem(f"requirements {requirements}: build failed: {last}") from None
    return tag
