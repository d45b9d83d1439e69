#!/usr/bin/env bash
# dsdeploy deploy: deepseek-r1 fp8 on 8× h200-sxm (gpu, vllm)
# engine: vllm; flags checked against vLLM docs (parallelism_scaling.md @096bd6a, expert_parallel_deployment latest, CacheConfig v0.10.2)
# plan: deepseek-r1 fp8 on 8× h200-sxm (gpu, vllm); tp=8 pp=1 ep=1 dp_attention=1
# workload: 4096 in + 2048 out tokens, 16 concurrent; memory plan: fits (none binding)
# memory: weights 673.2 GB total; h200-sxm (each): 84.3 GB weights + 3.5 GB KV of 135.7 GB usable; KV capacity 1,409,479 tokens
set -euo pipefail

exec vllm serve /models/DeepSeek-R1 \
  --served-model-name deepseek-r1 \
  --host 127.0.0.1 \
  --port 8000 \
  --tensor-parallel-size 8 \
  --max-model-len 36864 \
  --gpu-memory-utilization 0.9 \
  --kv-cache-dtype fp8
