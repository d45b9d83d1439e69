#!/usr/bin/env bash
# dsdeploy deploy: r1-distill-llama-70b gguf-q4_k_m on 1× rtx-4090 + 1× epyc-9654, 128 GB DRAM (layer-split, llama.cpp)
# engine: llama.cpp; flags checked against llama.cpp tools/server/README.md @00dc805
# plan: r1-distill-llama-70b gguf-q4_k_m on 1× rtx-4090 + 1× epyc-9654, 128 GB DRAM (layer-split, llama.cpp); tp=1 pp=1 ep=1 dp_attention=1
# workload: 1024 in + 1024 out tokens, 1 concurrent; memory plan: fits (none binding)
# memory: weights 42.8 GB total; rtx-4090 (each): 24.6 GB weights + 0.1 GB KV of 25.8 GB usable; host DRAM: 18.1 GB weights + 0.1 GB KV of 120.0 GB usable; KV capacity 2,528 tokens
set -euo pipefail

exec llama-server -m /models/DeepSeek-R1-Distill-Llama-70B-Q4_K_M.gguf \
  --alias r1-distill-llama-70b \
  --host 127.0.0.1 \
  --port 8000 \
  -c 2048 \
  -np 1 \
  -t 96 \
  -ngl 46 \
  -ctk q4_0 \
  -ctv q4_0 \
  -fa on
