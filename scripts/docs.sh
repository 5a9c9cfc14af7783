#!/usr/bin/env bash
# Serves the docs site (mkdocs.yml, docs/) on http://127.0.0.1:8000, rebuilding
# it as the pages change. Extra arguments go to `mkdocs serve`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh"
NO_MKDOCS_2_WARNING=1 exec "$ROOT/.venv/bin/mkdocs" serve -a 127.0.0.1:8000 "$@"
