#!/usr/bin/env bash
# Make .venv-aic: NVIDIA's aiconfigurator (PyPI `aiconfigurator`), the peer estimator that
# bench/peer_aiconfigurator.py compares dsdeploy against. It runs on the CPU (its estimator reads
# per-op kernel timings shipped in the wheel). It is never a runtime dependency of dsdeploy: it
# lives in its own venv and bench/peer_aiconfigurator.py calls it in a child process.
# Usage: bash scripts/setup_aiconfigurator.sh [VENV_DIR]     (default: .venv-aic in the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-aic}"
PY="${PYTHON:-python3}"
AIC_VERSION="${AIC_VERSION:-0.12.0}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV ..."
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
V="$VENV/bin/python"

echo "installing aiconfigurator==$AIC_VERSION ..."
"$V" -m pip install -q "aiconfigurator==$AIC_VERSION"
echo "checking the import ..."
"$V" -c "import aiconfigurator, importlib.metadata as m; print('aiconfigurator', m.version('aiconfigurator'))"
echo "done: $VENV"
