#!/usr/bin/env bash
# Creates .venv (if missing) and installs gkbroad with its dev requirements into it.
# Sourced by the other scripts; safe to run again (pip skips what is installed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "== installing requirements-dev.txt and gkbroad (editable)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
# The status page's browser test (tests/integration/test_status_page_browser.py) renders the page in
# headless Chromium from Debian's packages; a fresh machine gets it here when it is root with apt.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing chromium (Debian package) for the browser test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
