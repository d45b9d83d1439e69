#!/usr/bin/env bash
# dsdeploy deploy: deepseek-r1 fp8 on 8× h100-sxm × 2 nodes (gpu, sglang)
# engine: sglang; flags checked against SGLang docs/advanced_features/server_arguments.md @004813e
# plan: deepseek-r1 fp8 on 8× h100-sxm × 2 nodes (gpu, sglang); tp=16 pp=1 ep=1 dp_attention=1
# workload: 1024 in + 1024 out tokens, 1 concurrent; memory plan: fits (none binding)
# memory: weights 673.2 GB total; h100-sxm (each): 42.3 GB weights + 0.1 GB KV of 69.3 GB usable; KV capacity 359,887 tokens
# fabric: 2 nodes over InfiniBand NDR 400 Gb/s port (50 GB/s per direction per GPU); the plan's communication times assume GPUDirect RDMA on that fabric. Check `ibv_devinfo` on every node and set NCCL_IB_HCA (InfiniBand/RoCE) or NCCL_SOCKET_IFNAME; over plain TCP, NCCL falls back to sockets and inter-node steps are many times slower
# note: the same command runs on every node with its own --node-rank; node 0 serves HTTP
set -euo pipefail

NODE_RANK="${NODE_RANK:?set NODE_RANK to the rank of this node, 0..1 (0 = head)}"
case "$NODE_RANK" in
  0)
    exec python3 -m sglang.launch_server \
      --model-path /models/DeepSeek-R1 \
      --served-model-name deepseek-r1 \
      --host 127.0.0.1 \
      --port 8000 \
      --trust-remote-code \
      --tp 16 \
      --context-length 33792 \
      --mem-fraction-static 0.81 \
      --kv-cache-dtype bf16 \
      --dist-init-addr 10.0.0.1:20000 \
      --nnodes 2 \
      --node-rank 0
    ;;
  1)
    exec python3 -m sglang.launch_server \
      --model-path /models/DeepSeek-R1 \
      --served-model-name deepseek-r1 \
      --host 127.0.0.1 \
      --port 8000 \
      --trust-remote-code \
      --tp 16 \
      --context-length 33792 \
      --mem-fraction-static 0.81 \
      --kv-cache-dtype bf16 \
      --dist-init-addr 10.0.0.1:20000 \
      --nnodes 2 \
      --node-rank 1
    ;;
  *) echo "NODE_RANK must be 0..1" >&2; exit 2 ;;
esac
