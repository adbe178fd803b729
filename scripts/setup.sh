#!/usr/bin/env bash
# The host's needs: a venv with requirements.txt, and Debian's redis-server
# and rabbitmq-server (the local backend's brokers), postgresql (its database
# server), debootstrap (the offline
# image base) and chromium (tests/test_report.py renders the HTML report and
# reads its pixels).
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
# The local backend's private database server (initdb and postgres).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    # The packages start a system redis and rabbitmq; the rig starts its own.
    if command -v systemctl >/dev/null; then
      systemctl disable --now redis-server rabbitmq-server postgresql >/dev/null 2>&1 || true
    fi
  else
    echo "[setup] please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
  fi
fi

stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "[setup] creating .venv and installing requirements.txt"
"$PYTHON" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
echo "$want" > "$stamp"
