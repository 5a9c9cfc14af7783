#!/usr/bin/env bash
# Creates .venv (if missing) and installs gkbroad with its dev requirements into it.
# Run by the other scripts; safe to run again (rm .venv/.gkbroad-installed forces a reinstall).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# pip takes 4 to 20 s (more on a busy machine) to check an up-to-date venv against the indexes,
# on every run of scripts/test.sh; so the install is skipped while the files it reads are the ones last installed
# from (their checksums are kept in the venv, which a fresh clone does not have).
STAMP="$VENV/.gkbroad-installed"
UV="uv==0.13.9"
WANTED="$(cd "$ROOT" && { cat requirements.txt requirements-dev.txt setup.py; echo "$UV"; } | sha256sum)"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANTED" ]; then
  echo "== requirements unchanged since the last install into $VENV: pip skipped"
else
  echo "== installing requirements-dev.txt and gkbroad (editable)"
  # One resolution for both; gkbroad's own requirements are in requirements-dev.txt too. uv (from PyPI,
  # into the venv) downloads and unpacks in parallel: 9 s into a fresh venv where pip took 27 to 46 s.
  # --compile-bytecode, as pip does by default: where PYTHONDONTWRITEBYTECODE is set, every process of
  # the suite would otherwise compile what it imports again. Should uv not install, pip does it all.
  REQUIREMENTS=(-r "$ROOT/requirements-dev.txt" -e "$ROOT")
  PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  if "${PIP[@]}" "$UV" && UV_LINK_MODE=copy "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
    --compile-bytecode "${REQUIREMENTS[@]}"; then
    :
  else
    echo "== uv did not install the requirements: pip does"
    "${PIP[@]}" "${REQUIREMENTS[@]}"
  fi
  echo "$WANTED" >"$STAMP"
fi
# The status page's browser test (tests/integration/test_status_page_browser.py) renders the page in
# headless Chromium from Debian's packages; a fresh machine gets it here when it is root with apt.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing chromium (Debian package) for the browser test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
