# Sourced: `compose ARGS` runs docker compose v2 where it exists, else
# Debian's docker-compose v1, always on this project's stack.
COMPOSE_PROJECT=${COMPOSE_PROJECT:-celery-rig-stack}
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose -p "$COMPOSE_PROJECT" -f docker-compose.yml "$@"; }
elif command -v docker-compose >/dev/null; then
  compose() { docker-compose -p "$COMPOSE_PROJECT" -f docker-compose.yml "$@"; }
else
  echo "error: neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed" >&2
  exit 3
fi
