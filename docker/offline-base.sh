#!/usr/bin/env bash
# Builds the offline base image from Debian's packages, for machines where no
# container registry answers: debootstrap a minimal bookworm with Python,
# Redis and PostgreSQL, then `docker import` it. Everything else (the app,
# Redis and PostgreSQL images) is built FROM this base with no network.
set -euo pipefail
name=${1:?usage: offline-base.sh IMAGE_NAME [RELEASE]}
release=${2:-bookworm}
# bookworm's base serves Redis and PostgreSQL too; a newer release only the app.
case "$release" in
  bookworm) packages=python3,python3-venv,redis-server,postgresql-15,procps ;;
  *) packages=python3,python3-venv,procps ;;
esac
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "offline base $name already present"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap missing: run 'make setup' (apt-get install debootstrap)" >&2; exit 1; }
root=$(mktemp -d /tmp/celery-rig-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap $release into $root (about a minute)..."
# Progress: debootstrap's stage lines, and a count instead of one line per package.
debootstrap --variant=minbase \
  --include="$packages" \
  "$release" "$root" http://deb.debian.org/debian 2>&1 | awk '
    /I: (Retrieving|Validating) [^ ]+ [^ ]+$/ || /I: (Unpacking|Configuring) [^ ]+\.\.\.$/ {
      if (++n % 50 == 0) { print "[debootstrap] " n " package steps done"; fflush() }
      next
    }
    { print "[debootstrap] " $0; fflush() }'
[ "${PIPESTATUS[0]}" = 0 ] || { echo "debootstrap failed" >&2; exit 1; }
# Trim what an image never needs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  - "$name" >/dev/null
echo "imported $name"
