#!/usr/bin/env bash
# Starts the reproduction stack with docker compose v2 or docker-compose v1
# and waits (bounded) until the web app, Flower and the workers answer.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compose.sh
for port in "${REDIS_PORT:-6379}" "${POSTGRES_PORT:-5432}" "${WEB_PORT:-8000}" "${FLOWER_PORT:-5555}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port on 127.0.0.1 is in use; free it or set REDIS_PORT/POSTGRES_PORT/WEB_PORT/FLOWER_PORT" >&2
    exit 3
  fi
done
start=$(date +%s)
compose up -d
auth=${FLOWER_BASIC_AUTH:-debug:debug}
for i in $(seq 1 120); do
  # Flower lists a worker once it answered a ping: then it consumes tasks.
  if curl -fsS -o /dev/null "http://127.0.0.1:${WEB_PORT:-8000}/health" \
     && [ "$(curl -fsS -u "$auth" "http://127.0.0.1:${FLOWER_PORT:-5555}/api/workers?refresh=1" \
             | grep -o '"celery@worker[0-9]*"' | sort -u | wc -l)" -ge 2 ]; then
    echo "[up] all healthy in $(( $(date +%s) - start )) s: web http://127.0.0.1:${WEB_PORT:-8000}/health, Flower http://127.0.0.1:${FLOWER_PORT:-5555} ($auth)"
    exit 0
  fi
  [ $((i % 5)) = 0 ] && echo "[up] waiting for web and Flower ($i s)"
  sleep 1
done
echo "error: the stack did not become healthy in 120 s; see \`make logs\`" >&2
compose ps >&2
exit 1
