#!/usr/bin/env bash
# Builds the images docker-compose.yml names, with or without a registry:
#   celery-rig/app       web, workers and Flower (docker/Dockerfile), one tag per
#                        Python version (py3.11: bookworm, py3.13: trixie; PYTHONS)
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

# Workers run the Python minor version that runs the rig: one app image per
# version (rig/backends/python_images.py), from the Debian release that ships it.
PYTHONS=${PYTHONS:-"3.11 3.13"}
release_of() { case "$1" in 3.11) echo bookworm ;; 3.13) echo trixie ;; *) echo "no Debian release for Python $1" >&2; return 1 ;; esac; }

# Skip everything when the images were built from exactly these inputs.
inputs=$(cat requirements.txt manage.py docker/* $(find exam_app -name '*.py' | sort) | sha256sum | cut -c1-16)
app_images=$(for v in $PYTHONS; do printf 'celery-rig/app:py%s ' "$v"; done)
up_to_date=1
for image in celery-rig/app:latest $app_images; do
  built=$(docker image inspect --format '{{ index .Config.Labels "com.celery-rig.inputs" }}' "$image" 2>/dev/null || true)
  [ "$built" = "$inputs" ] || up_to_date=0
done
if [ $up_to_date = 1 ] && docker image inspect celery-rig/redis:latest celery-rig/postgres:latest celery-rig/rabbitmq:latest >/dev/null 2>&1; then
  step "images are up to date (inputs $inputs; Python $PYTHONS)"
  exit 0
fi

registry=0
if docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
  registry=1
  step "a registry answers: standard Python, Redis and PostgreSQL images"
  docker pull -q redis:7-bookworm >/dev/null && docker tag redis:7-bookworm celery-rig/redis:latest
  docker pull -q postgres:15-bookworm >/dev/null && docker tag postgres:15-bookworm celery-rig/postgres:latest
  docker pull -q rabbitmq:3.10 >/dev/null && docker tag rabbitmq:3.10 celery-rig/rabbitmq:latest
else
  step "no registry answers: offline base from Debian's packages"
  bash docker/offline-base.sh "$OFFLINE_BASE" bookworm
  docker tag "$OFFLINE_BASE" celery-rig/redis:latest
  docker build --force-rm -f docker/postgres-offline.Dockerfile --build-arg BASE="$OFFLINE_BASE" \
    -t celery-rig/postgres:latest . | sed -u "s/^/[postgres] /"
  # Debian's rabbitmq-server: apt-get in the build, from Debian's mirror (reachable here).
  docker build --force-rm -f docker/rabbitmq-offline.Dockerfile --build-arg BASE="$OFFLINE_BASE" \
    -t celery-rig/rabbitmq:latest . | sed -u "s/^/[rabbitmq] /"
fi

for version in $PYTHONS; do
  release=$(release_of "$version")
  wheelhouse=build/wheelhouse-py$version
  step "wheelhouse for Python $version: requirements.txt, downloaded on the host"
  mkdir -p "$wheelhouse"
  "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --python-version "$version" --implementation cp \
    -r requirements.txt -d "$wheelhouse"
  if [ $registry = 1 ]; then
    app_base=python:$version-slim-$release
    docker pull -q "$app_base" >/dev/null
  else
    app_base=celery-rig/base:$release
    bash docker/offline-base.sh "$app_base" "$release"
  fi
  step "app image for Python $version from $app_base"
  docker build --force-rm -f docker/Dockerfile --build-arg BASE="$app_base" \
    --build-arg WHEELHOUSE="$wheelhouse" \
    --label "com.celery-rig.inputs=$inputs" -t "celery-rig/app:py$version" . | sed -u "s/^/[app $version] /"
done
# The compose file's image (web, Flower, the reproduction stack): Python 3.11.
docker tag celery-rig/app:py3.11 celery-rig/app:latest
step "done in $(( $(date +%s) - start )) s: $(docker images --format '{{.Repository}}:{{.Tag}}' 'celery-rig/*' | tr '\n' ' ')"
