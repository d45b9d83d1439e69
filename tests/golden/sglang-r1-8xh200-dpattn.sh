#!/usr/bin/env bash
# dsdeploy deploy: deepseek-r1 fp8 on 8× h200-sxm (gpu, sglang)
# engine: sglang; flags checked against SGLang docs/advanced_features/server_arguments.md @004813e
# plan: deepseek-r1 fp8 on 8× h200-sxm (gpu, sglang); tp=1 pp=1 ep=8 dp_attention=8
# workload: 2048 in + 1024 out tokens, 64 concurrent; memory plan: fits (none binding)
# memory: weights 673.2 GB total; h200-sxm (each): 97.6 GB weights + 0.9 GB KV of 122.1 GB usable; KV capacity 4,635,744 tokens
set -euo pipefail

exec python3 -m sglang.launch_server \
  --model-path /models/DeepSeek-R1 \
  --served-model-name deepseek-r1 \
  --host 127.0.0.1 \
  --port 8000 \
  --trust-remote-code \
  --tp 8 \
  --dp 8 \
  --enable-dp-attention \
  --ep-size 8 \
  --context-length 34816 \
  --mem-fraction-static 0.81 \
  --kv-cache-dtype fp8_e4m3
