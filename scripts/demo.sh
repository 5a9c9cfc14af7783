#!/usr/bin/env bash
# The demo: installs what it needs, starts the bundled broker, then drives the
# command line as a user would: `gkbroad produce` loads sample orders,
# `gkbroad run examples/orders.toml --status 127.0.0.1:PORT` consumes them,
# progress is printed every second, and SIGTERM stops it once everything is
# committed. Extra arguments go to examples/demo.py (try --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/examples/demo.py" "$@"
