#!/usr/bin/env bash
# The demo: installs what it needs, starts the bundled broker, produces sample
# orders and consumes them with examples/orders.py. Extra arguments go to
# examples/demo.py (try --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/examples/demo.py" "$@"
