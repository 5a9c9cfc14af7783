#!/usr/bin/env bash
# The test command: installs what it needs, checks lint and format, then runs
# the suite twice.
#   0. ruff check and ruff format --check, then mypy (configuration of all in
#      pyproject.toml), then the docs site built with `mkdocs build --strict` (mkdocs.yml);
#   1. unit tests, plain (no monkey patching);
#   2. everything (unit + integration against the bundled broker) under
#      gevent.monkey.patch_all(), which the Kafka parts require.
# Extra arguments are passed to both pytest runs.
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
echo "== run 1/2: unit tests, no monkey patching"
"$PY" -m pytest tests/unit "$@"
echo "== run 2/2: unit + integration tests under gevent.monkey.patch_all()"
GKBROAD_GEVENT_PATCH=1 "$PY" -m pytest tests "$@"
echo "== scripts/test.sh finished in $(( $(date +%s) - start ))s"
