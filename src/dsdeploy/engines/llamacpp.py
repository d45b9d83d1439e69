"""llama.cpp adapter: `llama-server` with a GGUF, on GPU(s), CPU, Apple unified memory, layer split
(`-ngl N`) or routed experts in host RAM (`-ngl 99 -ot exps=CPU`).

Flags checked against ggml-org/llama.cpp tools/server/README.md @00dc805 (auto-generated option
list, 2026): `-m`, `-a/--alias`, `--host`, `--port`, `-c/--ctx-size` (total, shared by the slots),
`-np/--parallel`, `-t/--threads`, `-ngl/--n-gpu-layers`, `-ot/--override-tensor <pattern>=<buffer
type>`, `-sm/--split-mode {none,layer,row,tensor}`, `-ctk/-ctv` ∈ {f32, f16, bf16, q8_0, q4_0, q4_1,
iq4_nl, q5_0, q5_1}, `-fa/--flash-attn [on|off|auto]`. A quantized V cache needs flash attention.
"""

from __future__ import annotations

from dsdeploy.engines.base import (
    DeployOptions,
    Launch,
    LaunchPlan,
    context_len,
    physical_cores,
    require_single_node,
)
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import MemoryPlan, Workload, unified_wired_limit_mib
from dsdeploy.specs.deployment import Deployment

CHECKED = "llama.cpp tools/server/README.md @00dc805"
IMAGE_GPU = "ghcr.io/ggml-org/llama.cpp:server-cuda"
IMAGE_CPU = "ghcr.io/ggml-org/llama.cpp:server"
IMAGE_ROCM = "ghcr.io/ggml-org/llama.cpp:server-rocm"  # llama.cpp docs/docker.md: server-rocm (AMD GPUs)
CACHE = {"bf16": "bf16", "fp16": "f16", "q4_0": "q4_0"}
# llama-server allocates the KV of every slot (-c) at start, so the context limit stays what the
# memory plan counted (engines.with_max_model_len)
STATIC_KV = True


def check(dep: Deployment) -> list[str]:
    notes: list[str] = []
    require_single_node(
        dep, "llama.cpp", "multi-host llama.cpp needs rpc-server processes and --rpc, which dsdeploy does not generate"
    )
    if dep.kv.id not in CACHE:
        raise UserError(
            f"llama.cpp has no '{dep.kv.id}' KV cache (its -ctk/-ctv types are f32, f16, bf16, q8_0, q4_0, ...); "
            "use --kv-dtype bf16, fp16 or q4_0"
        )
    if not (dep.weights.id.startswith("gguf-") or dep.weights.id in ("bf16", "fp16")):
        raise UserError(f"llama.cpp loads GGUF files; {dep.weights.id} weights must be converted to GGUF first")
    if dep.accelerator is not None and dep.accelerator.vendor == "amd":
        notes.append("AMD GPUs: use a ROCm (HIP) build of llama-server")
    return notes


def _mac_wired_limit(dep: Deployment) -> int | None:
    """The GPU wired-memory limit to set first on a Mac, or None (not a Mac, or nothing to raise)."""
    acc = dep.accelerator
    if dep.placement != "unified" or acc is None or acc.vendor != "apple":
        return None
    return unified_wired_limit_mib(acc)


def wired_limit_launch(limit_mib: int) -> Launch:
    """`sudo sysctl iogpu.wired_limit_mb=N` (macOS 14+), N from `estimators.memory.unified_wired_limit_mib`."""
    return Launch(argv=["sudo", "sysctl", f"iogpu.wired_limit_mb={limit_mib}"], role="setup", setup=True)


def _image(dep: Deployment) -> str:
    if dep.placement == "cpu" or dep.accelerator is None:
        return IMAGE_CPU
    return IMAGE_ROCM if dep.accelerator.vendor == "amd" else IMAGE_GPU


def build(dep: Deployment, mem: MemoryPlan, wl: Workload, opts: DeployOptions) -> LaunchPlan:
    notes = check(dep)
    m = dep.model
    slots = max(1, wl.concurrency)
    argv = [
        "llama-server",
        "-m",
        opts.model_path,
        "--alias",
        opts.served_name or dep.model_id,
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "-c",
        str(context_len(wl, opts) * slots),
        "-np",
        str(slots),
    ]
    threads = opts.threads or physical_cores(dep)
    if threads:
        argv += ["-t", str(threads)]
    all_layers = str(99 if m.layers < 99 else m.layers + 1)
    if dep.placement == "experts-on-cpu":
        argv += ["-ngl", all_layers, "-ot", "exps=CPU"]
    elif dep.placement == "layer-split":
        if mem.gpu_layers is None:
            raise UserError("the memory plan has no layer count for a layer split")
        argv += ["-ngl", str(mem.gpu_layers)]
    elif dep.placement == "cpu":
        argv += ["-ngl", "0"]
    else:  # gpu, unified
        argv += ["-ngl", all_layers]
    if dep.devices > 1 and dep.placement != "cpu":
        argv += ["-sm", "layer"]
        notes.append(
            "several GPUs: layers (and their KV) are split across them (-sm layer); -sm row is the tensor-split alternative"
        )
    k = CACHE[dep.kv.id]
    argv += ["-ctk", k, "-ctv", k]
    if k.startswith("q"):
        argv += ["-fa", "on"]
    if not opts.model_path.endswith(".gguf"):
        notes.append("-m takes the GGUF file (the first shard, *-00001-of-0000N.gguf, of a split model)")
    if dep.placement == "experts-on-cpu":
        notes.append(
            "`-ot exps=CPU` keeps every routed-expert tensor (ffn_*_exps) in host RAM; newer builds spell it --cpu-moe"
        )
    launches = [Launch(argv=argv)]
    limit = _mac_wired_limit(dep)
    if limit is not None:
        launches.insert(0, wired_limit_launch(limit))
        notes.append(
            "macOS wires at most about three quarters of RAM for the GPU by default; the sysctl before the server raises "
            "it to what the memory plan assumed (it resets at reboot)"
        )
    return LaunchPlan(
        engine="llama.cpp",
        launches=launches,
        nodes=1,
        gpus_per_node=max(dep.per_node, 0),
        port=opts.port,
        model_path=opts.model_path,
        image=opts.image or _image(dep),
        checked_against=CHECKED,
        notes=notes,
        uses_gpu=dep.placement != "cpu" and dep.accelerator is not None and not dep.accelerator.unified_memory,
    )
