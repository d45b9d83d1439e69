#!/usr/bin/env bash
# dsdeploy deploy: deepseek-r1 gguf-q4_k_m on 1× rtx-4090 + 1× epyc-9654, 512 GB ddr5-4800x12 (experts-on-cpu, llama.cpp)
# engine: llama.cpp; flags checked against llama.cpp tools/server/README.md @00dc805
# plan: deepseek-r1 gguf-q4_k_m on 1× rtx-4090 + 1× epyc-9654, 512 GB ddr5-4800x12 (experts-on-cpu, llama.cpp); tp=1 pp=1 ep=1 dp_attention=1
# workload: 1024 in + 1024 out tokens, 1 concurrent; memory plan: fits (none binding)
# memory: weights 406.7 GB total; rtx-4090 (each): 10.8 GB weights + 0.1 GB KV of 25.8 GB usable; host DRAM: 395.9 GB weights + 0.0 GB KV of 504.0 GB usable; KV capacity 198,949 tokens
# note: `-ot exps=CPU` keeps every routed-expert tensor (ffn_*_exps) in host RAM; newer builds spell it --cpu-moe
set -euo pipefail

exec llama-server -m /models/DeepSeek-R1-Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00009.gguf \
  --alias deepseek-r1 \
  --host 127.0.0.1 \
  --port 8000 \
  -c 2048 \
  -np 1 \
  -t 96 \
  -ngl 99 \
  -ot exps=CPU \
  -ctk bf16 \
  -ctv bf16
