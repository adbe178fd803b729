#!/usr/bin/env bash
# Builds the images docker-compose.yml names, with or without a registry:
#   celery-rig/app       web, workers and Flower (docker/Dockerfile)
#   celery-rig/redis     redis:7-bookworm, or Debian's redis-server on the offline base
#   celery-rig/postgres  postgres:15-bookworm, or Debian's PostgreSQL on the offline base
#   celery-rig/rabbitmq  rabbitmq:3.10, or Debian's rabbitmq-server on the offline base
set -euo pipefail
export DOCKER_BUILDKIT=0  # the classic builder: needs no buildx plugin and prints each step
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OFFLINE_BASE=celery-rig/base:bookworm
step() { printf '[images] %s\n' "$*"; }
start=$(date +%s)

# Skip everything when the images were built from exactly these inputs.
inputs=$(cat requirements.txt manage.py docker/* $(find exam_app -name '*.py' | sort) | sha256sum | cut -c1-16)
built=$(docker image inspect --format '{{ index .Config.Labels "com.celery-rig.inputs" }}' celery-rig/app:latest 2>/dev/null || true)
if [ "$built" = "$inputs" ] && docker image inspect celery-rig/redis:latest celery-rig/postgres:latest celery-rig/rabbitmq:latest >/dev/null 2>&1; then
  step "images are up to date (inputs $inputs)"
  exit 0
fi

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
  docker pull -q rabbitmq:3.10 >/dev/null && docker tag rabbitmq:3.10 celery-rig/rabbitmq:latest
else
  step "no registry answers: offline base from Debian's packages"
  bash docker/offline-base.sh "$OFFLINE_BASE"
  app_base=$OFFLINE_BASE
  docker tag "$OFFLINE_BASE" celery-rig/redis:latest
  docker build --force-rm -f docker/postgres-offline.Dockerfile --build-arg BASE="$OFFLINE_BASE" \
    -t celery-rig/postgres:latest . | sed -u "s/^/[postgres] /"
  # Debian's rabbitmq-server: apt-get in the build, from Debian's mirror (reachable here).
  docker build --force-rm -f docker/rabbitmq-offline.Dockerfile --build-arg BASE="$OFFLINE_BASE" \
    -t celery-rig/rabbitmq:latest . | sed -u "s/^/[rabbitmq] /"
fi

step "app image from $app_base"
docker build --force-rm -f docker/Dockerfile --build-arg BASE="$app_base" \
  --label "com.celery-rig.inputs=$inputs" -t celery-rig/app:latest . | sed -u "s/^/[app] /"
step "done in $(( $(date +%s) - start )) s: $(docker images --format '{{.Repository}}:{{.Tag}}' 'celery-rig/*' | tr '\n' ' ')"
