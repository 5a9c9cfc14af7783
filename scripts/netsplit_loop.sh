#!/usr/bin/env bash
# The network-partition test of issue 18 (tests/integration/test_netsplit.py), run N times in a row for
# its figures: records the cut member handled after its session expired, records it handled after the
# other member took a partition over, committed offsets that went backwards.
#
#   scripts/netsplit_loop.sh [N] [pytest arguments...]     N defaults to 10; e.g. -k key for ordering="key" only
#
# One run at a time (each starts its own broker and two member processes, about 100 s); prints each
# run's figures and the pytest output of a failed run, then how many passed. Exits 1 unless all did.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-10}"
shift || true
passed=0
for i in $(seq 1 "$RUNS"); do
  output="$(cd "$ROOT" && GKBROAD_GEVENT_PATCH=1 "$ROOT/.venv/bin/python" -m pytest tests/integration/test_netsplit.py \
    -q -p no:cacheprovider -s "$@" 2>&1)"
  code=$?
  echo "$output" | grep -o 'netsplit figures.*' | sed "s/^/run $i: /"
  if [ "$code" -eq 0 ]; then
    passed=$((passed + 1))
  else
    echo "run $i failed:"
    echo "$output" | tail -40
  fi
done
echo "passed $passed of $RUNS"
[ "$passed" -eq "$RUNS" ]
