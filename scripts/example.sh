#!/usr/bin/env bash
# The example project as a user runs it: build this repository's wheel, install it
# with the example's requirements into a fresh virtualenv outside our own, and run
# the example's tests (which use the pytest plugin) from the example's directory.
# A packaging mistake (a missing module, entry point or data file) fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '[example] %s\n' "$*"; }
venv=build/example-venv
# setuptools builds in build/lib and never empties it: a module since removed would ship.
rm -rf build/dist build/lib build/bdist.* "$venv"
step "building the wheel"
.venv/bin/pip wheel --quiet --disable-pip-version-check --no-deps -w build/dist .
rm -rf ./*.egg-info
# What a user installs is what a user runs: the checkout's own tools stay out,
# the catalog and the report's templates go in.
.venv/bin/python - build/dist/*.whl <<'PY'
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
stray = [n for n in names if re.match(r"(tools|tests|examples|scripts)/", n)]
needed = [p for p in (r"rig/chaos/.+\.toml", r"rig/templates/report\.html\.j2", r"rig/docker-compose\.yml")
          if not any(re.fullmatch(p, n) for n in names)]
if stray or needed:
    sys.exit(f"[example] the wheel holds checkout-only files {stray} or lacks {needed}")
PY
step "a fresh virtualenv with the wheel and examples/shop/requirements.txt"
python3 -m venv "$venv"
# The images' wheelhouse, where `make images` left one, saves downloads.
links=(); [ -d build/wheelhouse-py3.11 ] && links=(--find-links build/wheelhouse-py3.11)
"$venv/bin/pip" install --quiet --disable-pip-version-check "${links[@]}" \
  build/dist/*.whl -r examples/shop/requirements.txt "$(grep '^pytest==' requirements.txt)"
step "celery-rig is on the PATH: $("$venv/bin/celery-rig" --help | head -1)"
step "examples/shop's tests, through the plugin"
cd examples/shop && "../../$venv/bin/pytest" -q
