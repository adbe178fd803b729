#!/usr/bin/env bash
# Builds the three images docker-compose.yml names, with or without a registry:
#   celery-rig/app       web, workers and Flower (docker/Dockerfile)
#   celery-rig/redis     redis:7-bookworm, or Debian's redis-server on the offline base
#   celery-rig/postgres  postgres:15-bookworm, or Debian's PostgreSQL on the offline base
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OFFLINE_BASE=celery-rig/base:bookworm
step() { printf '\n[images] %s\n' "$*"; }
start=$(date +%s)

step "wheelhouse: Python packages from requirements.txt, downloaded on the host"
mkdir -p build/wheelhouse
"$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --python-version 3.11 --implementation cp \
  -r requirements.txt -d build/wheelhouse

if docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
  step "a registry answers: standard Python, Redis and PostgreSQL images"
  app_base=python:3.11-slim-bookworm
  docker pull -q redis:7-bookworm >/dev/null && docker tag redis:7-bookworm celery-rig/redis:latest
  docker pull -q postgres:15-bookworm >/dev/null && docker tag postgres:15-bookworm celery-rig/postgres:latest
else
  step "no registry answers: offline base from Debian's packages"
  bash docker/offline-base.sh "$OFFLINE_BASE"
  app_base=$OFFLINE_BASE
  docker tag "$OFFLINE_BASE" celery-rig/redis:latest
  docker build -q --force-rm -f docker/postgres-offline.Dockerfile --build-arg BASE="$OFFLINE_BASE" \
    -t celery-rig/postgres:latest . >/dev/null
fi

step "app image from $app_base"
docker build -q --force-rm -f docker/Dockerfile --build-arg BASE="$app_base" -t celery-rig/app:latest . >/dev/null
step "done in $(( $(date +%s) - start )) s: $(docker images --format '{{.Repository}}:{{.Tag}}' 'celery-rig/*' | tr '\n' ' ')"
