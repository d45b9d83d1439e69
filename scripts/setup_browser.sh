#!/usr/bin/env bash
# Headless Chromium for the browser tests (pytest -m browser): Debian's chromium package driven by
# Playwright's Python package. Browsers cannot be downloaded by `playwright install` here, so the
# tests point Playwright at /usr/bin/chromium (see docs/report.md). Idempotent; about 30 s the
# first time (apt downloads about 190 MB).
#
#   bash scripts/setup_browser.sh [PYTHON]     # PYTHON: the venv's python (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  echo "installing Debian's chromium (apt-get) ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi
chromium --version 2>/dev/null | grep -i chromium || true

# Playwright (pinned in pyproject's test extra, so `python3 tasks.py test` installs it too); never
# `playwright install`: it would try to download a browser.
if [ ! -x "$PY" ]; then
  echo "no $PY yet: playwright comes with the test extra (python3 tasks.py test installs it)"
  exit 0
fi
if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
  "$PY" -m pip install -q "playwright==1.65.3"
fi
"$PY" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
