#!/usr/bin/env bash
# dsdeploy deploy: deepseek-r1 gguf-q4_k_m on 1× rtx-4090 + 1× epyc-9654, 512 GB ddr5-4800x12 (experts-on-cpu, ktransformers)
# engine: ktransformers; flags checked against kvcache-ai/ktransformers kt-kernel/README.md @721b6c4 + SGLang server_arguments.md @004813e
# plan: deepseek-r1 gguf-q4_k_m on 1× rtx-4090 + 1× epyc-9654, 512 GB ddr5-4800x12 (experts-on-cpu, ktransformers); tp=1 pp=1 ep=1 dp_attention=1
# workload: 1024 in + 1024 out tokens, 1 concurrent; memory plan: fits (none binding)
# memory: weights 415.0 GB total; rtx-4090 (each): 19.1 GB weights + 0.1 GB KV of 25.8 GB usable; host DRAM: 395.9 GB weights + 0.0 GB KV of 504.0 GB usable; KV capacity 53,658 tokens
# note: ktransformers loads the accelerator-side tensors from the native fp8 checkpoint, not from the gguf-q4_k_m weights (those hold the CPU experts)
# note: --kt-num-gpu-experts 1: experts per layer kept on the GPU, from half the 3.6 GB left free; raise it while GPU memory allows
# note: --kt-threadpool-count assumes one NUMA node per socket; use the NUMA node count from lscpu
# note: --model must be the fp8 Hugging Face checkpoint: the GPU side loads its non-expert tensors (19.1 GB, as the memory plan counts them); the CPU experts come from --kt-weight-path
# note: kt-kernel for LLAMAFILE on an AMX CPU: build it with CPUINFER_CPU_INSTRUCT=AVX512 CPUINFER_ENABLE_AMX=OFF
# note: container image: build one with SGLang + kt-kernel (kt-kernel README); 'ktransformers-sglang:local' is a local tag
set -euo pipefail

exec python3 -m sglang.launch_server \
  --model /models/DeepSeek-R1 \
  --served-model-name deepseek-r1 \
  --host 127.0.0.1 \
  --port 8000 \
  --trust-remote-code \
  --tp 1 \
  --context-length 33792 \
  --mem-fraction-static 0.88 \
  --max-running-requests 1 \
  --kv-cache-dtype bf16 \
  --kt-method LLAMAFILE \
  --kt-weight-path /models/DeepSeek-R1-Q4_K_M \
  --kt-cpuinfer 96 \
  --kt-threadpool-count 1 \
  --kt-num-gpu-experts 1 \
  --kt-max-deferred-experts-per-token 0
