#!/usr/bin/env bash
# make test's pytest, in two stages; it exits non-zero if any part failed.
#
# 1. Everything but the catalog, as two pytest sessions side by side. Alone,
#    these tests kept the machine's two cores busy for under half their time:
#    most of it they wait on pip, on the engine and on the rig's own
#    subprocesses. BESIDE are the files that build environments of their own
#    (virtualenvs from the wheel, a compose stack, explore's runs); a new test
#    file goes to the other session unless it is listed here.
# 2. The catalog on both backends (`-m chaos`), alone: the load its soaks
#    measured, so no scenario's outcome depends on what else the suite runs.
#
# Ctrl-C reaches both sessions of stage 1 (each tears its fixtures down) and
# ends the script with 130, before the catalog.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTEST=.venv/bin/pytest
BESIDE=(
  tests/integration/test_real_project.py
  tests/integration/test_explore.py
  tests/integration/test_stack.py
)
INTERRUPTED=2  # pytest's exit status after Ctrl-C

beside_log=$(mktemp)
beside=""
finish() {
  # A Ctrl-C reached the session beside too: let it finish tearing down.
  if [ -n "$beside" ]; then wait "$beside" 2>/dev/null; fi
  rm -f "$beside_log"
}
trap finish EXIT

echo "[test] 1/2: all but the catalog; ${BESIDE[*]##*/} beside (their output follows the rest's)"
# A script's background job ignores SIGINT; env gives it back, so Ctrl-C reaches
# this session too. Its cache is off: two sessions would write .pytest_cache at once.
env --default-signal=INT "$PYTEST" -p no:cacheprovider -m "not chaos" "${BESIDE[@]}" \
  >"$beside_log" 2>&1 &
beside=$!
"$PYTEST" -m "not chaos" "${BESIDE[@]/#/--ignore=}"
rest=$?
echo "[test] the files beside:"
tail -n +1 -f --pid="$beside" "$beside_log"  # what it printed so far, then as it goes
wait "$beside"
beside_status=$?
if [ "$rest" = "$INTERRUPTED" ] || [ "$beside_status" = "$INTERRUPTED" ]; then
  echo "[test] interrupted"
  exit 130
fi

echo "[test] 2/2: the catalog on both backends"
"$PYTEST" -m chaos
catalog=$?

echo "[test] exit status: rest $rest, beside $beside_status, catalog $catalog"
[ "$rest" = 0 ] && [ "$beside_status" = 0 ] && [ "$catalog" = 0 ]
