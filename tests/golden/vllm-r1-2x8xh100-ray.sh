#!/usr/bin/env bash
# dsdeploy deploy: deepseek-r1 fp8 on 8× h100-sxm × 2 nodes (gpu, vllm)
# engine: vllm; flags checked against vLLM docs (parallelism_scaling.md @096bd6a, expert_parallel_deployment latest, CacheConfig v0.10.2)
# plan: deepseek-r1 fp8 on 8× h100-sxm × 2 nodes (gpu, vllm); tp=8 pp=2 ep=1 dp_attention=1
# workload: 1024 in + 1024 out tokens, 1 concurrent; memory plan: fits (none binding)
# memory: weights 673.2 GB total; h100-sxm (each): 42.9 GB weights + 0.1 GB KV of 77.0 GB usable; KV capacity 904,211 tokens
# fabric: 2 nodes over InfiniBand NDR 400 Gb/s port (50 GB/s per direction per GPU); the plan's communication times assume GPUDirect RDMA on that fabric. Check `ibv_devinfo` on every node and set NCCL_IB_HCA (InfiniBand/RoCE) or NCCL_SOCKET_IFNAME; over plain TCP, NCCL falls back to sockets and inter-node steps are many times slower
# note: Ray cluster: node 0 starts the head, waits (up to 1800 s) until all 2 nodes have joined, then starts vLLM; every node needs the same model path and vLLM version; set VLLM_HOST_IP to each worker's own IP if it has several interfaces
set -euo pipefail

NODE_RANK="${NODE_RANK:?set NODE_RANK to the rank of this node, 0..1 (0 = head)}"
case "$NODE_RANK" in
  0)
    export VLLM_HOST_IP=10.0.0.1
    ray start \
      --head \
      --port=6379 \
      --node-ip-address=10.0.0.1
    python3 \
      -c 'import sys, time, ray
ray.init(address="auto", logging_level="ERROR")
n, end = 2, time.time() + 1800
alive = lambda: sum(1 for x in ray.nodes() if x["Alive"])
while alive() < n:
    if time.time() > end: sys.exit(f"only {alive()} of {n} Ray nodes joined")
    time.sleep(5)
print(f"{n} Ray nodes alive")'
    exec vllm serve /models/DeepSeek-R1 \
      --served-model-name deepseek-r1 \
      --host 127.0.0.1 \
      --port 8000 \
      --tensor-parallel-size 8 \
      --pipeline-parallel-size 2 \
      --max-model-len 33792 \
      --gpu-memory-utilization 0.9 \
      --distributed-executor-backend ray
    ;;
  1)
    exec ray start \
      --block \
      --address=10.0.0.1:6379
    ;;
  *) echo "NODE_RANK must be 0..1" >&2; exit 2 ;;
esac
