#!/usr/bin/env bash
# The test command: installs what it needs, checks lint and format, then runs
# the suite twice.
#   0. ruff check and ruff format --check, then mypy (configuration of all in
#      pyproject.toml), then the docs site built with `mkdocs build --strict` (mkdocs.yml);
#   1. unit tests, plain (no monkey patching);
#   2. everything (unit + integration against the bundled broker) under
#      gevent.monkey.patch_all(), which the Kafka parts require, less the unit tests
#      marked patch_neutral (pytest.ini): pure data, or all their work in child
#      processes, which the patching of the test process does not reach; run 1 has them.
# Run 1 runs beside run 2 (its output is printed after run 2's). Extra arguments are passed to
# both pytest runs (--slow: the fault tests at full size).
# Set GKBROAD_TEST_BOOTSTRAP_SERVERS=host:port to use your own Kafka instead of
# the bundled Tansu broker.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
PY="$ROOT/.venv/bin/python"
start=$(date +%s)
echo "== lint: ruff check and ruff format --check"
"$ROOT/.venv/bin/ruff" check "$ROOT"
"$ROOT/.venv/bin/ruff" format --check "$ROOT"
echo "== types: mypy"
"$ROOT/.venv/bin/mypy"
echo "== docs: mkdocs build --strict (a broken link or a page missing from the nav fails)"
NO_MKDOCS_2_WARNING=1 "$ROOT/.venv/bin/mkdocs" build --strict  # into site/ (gitignored); not --quiet, which hides the warnings strict counts
# Both runs spread the tests over pytest-xdist worker processes, one test at a time to whichever
# is free (the tests marked long go first). The integration tests mostly wait on the broker, so
# more workers than cores pays; each worker starts a broker of its own (or, with
# GKBROAD_TEST_BOOTSTRAP_SERVERS, shares that one: topic and group names are unique per process).
# GKBROAD_TEST_WORKERS=0 runs everything in this process.
PARALLEL=(-n "${GKBROAD_TEST_WORKERS:-6}" --maxschedchunk 1)
# Run 1 goes beside run 2, its output kept until run 2 is over: run 1 keeps the CPU busy for half
# a minute, while run 2, whose tests mostly wait on the broker, kept about 1.3 of the 2 cores busy
# on its own; one after the other they took 32 to 42 s more (measured on a shared machine).
RUN1_LOG="$(mktemp)"
echo "== run 1/2: unit tests, no monkey patching (beside run 2; its output follows run 2's)"
"$PY" -m pytest tests/unit "${PARALLEL[@]}" "$@" >"$RUN1_LOG" 2>&1 &
run1=$!
trap 'kill "$run1" 2>/dev/null || true; rm -f "$RUN1_LOG"' EXIT  # an interrupted run 2 ends run 1 too
echo "== run 2/2: unit (less the patch_neutral ones) + integration tests under gevent.monkey.patch_all()"
run_start=$SECONDS
run2_code=0
GKBROAD_GEVENT_PATCH=1 "$PY" -m pytest tests -m "not patch_neutral" "${PARALLEL[@]}" "$@" || run2_code=$?
echo "== run 2/2 took $((SECONDS - run_start))s"
run1_code=0
wait "$run1" || run1_code=$?
echo "== run 1/2 output (pytest's last line says how long it took)"
cat "$RUN1_LOG"
echo "== scripts/test.sh finished in $(( $(date +%s) - start ))s"
if [ "$run1_code" != 0 ] || [ "$run2_code" != 0 ]; then
  echo "== failed: run 1 exited $run1_code, run 2 exited $run2_code"
  exit 1
fi
