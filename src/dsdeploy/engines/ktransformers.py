"""KTransformers adapter: SGLang + kt-kernel, attention/shared experts/KV on the GPU and the routed
experts in host RAM, computed by the CPU.

Flags checked against kvcache-ai/ktransformers kt-kernel/README.md @721b6c4 ("Integration with
SGLang") and sgl-project/sglang docs/advanced_features/server_arguments.md @004813e ("Ktransformers"
table): `--kt-method` ∈ {AMXINT4, AMXINT8, RAWINT4, LLAMAFILE} (LLAMAFILE reads GGUF experts
directly; the AMX methods need weights converted with kt-kernel's convert_cpu_weights.py and an AMX
CPU), `--kt-weight-path` (the CPU-side weights), `--kt-cpuinfer` (physical cores, not
hyperthreads), `--kt-threadpool-count` (NUMA nodes), `--kt-num-gpu-experts`,
`--kt-max-deferred-experts-per-token`; `--model` is the GPU-side Hugging Face checkpoint.
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
from dsdeploy.engines.sglang import kv_flags
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import GB, MemoryPlan, Workload, gpu_expert_slots, static_memory_fraction
from dsdeploy.specs.deployment import Deployment

CHECKED = "kvcache-ai/ktransformers kt-kernel/README.md @721b6c4 + SGLang server_arguments.md @004813e"
IMAGE = "ktransformers-sglang:local"


def kt_method(dep: Deployment) -> str:
    w = dep.weights.id
    if w.startswith("gguf-"):
        return "LLAMAFILE"
    if w == "amx-int4":
        return "AMXINT4"
    if w == "int8":
        return "AMXINT8"
    raise UserError(
        f"KTransformers runs the CPU experts as AMXINT4/AMXINT8 (converted with kt-kernel) or from a GGUF (LLAMAFILE); "
        f"--weights {w} is neither: use amx-int4, int8 or a gguf-* format"
    )


def check(dep: Deployment) -> list[str]:
    notes: list[str] = []
    require_single_node(dep, "KTransformers", "it pairs one host's CPUs and RAM with that host's GPUs")
    if dep.placement != "experts-on-cpu":
        raise UserError(f"KTransformers only does experts-on-cpu; placement '{dep.placement}' needs another engine")
    method = kt_method(dep)
    if method.startswith("AMX") and dep.cpu is not None and dep.cpu.matrix_isa != "amx":
        raise UserError(
            f"--kt-method {method} needs an Intel CPU with AMX; {dep.cpu.id} has {dep.cpu.matrix_isa}: "
            "use a GGUF (LLAMAFILE backend) instead"
        )
    if dep.cpu is None:
        notes.append(
            "no --cpu given: set --kt-cpuinfer to the physical core count and --kt-threadpool-count to the NUMA node count"
        )
    return notes


def build(dep: Deployment, mem: MemoryPlan, wl: Workload, opts: DeployOptions) -> LaunchPlan:
    notes = check(dep)
    method = kt_method(dep)
    if not opts.cpu_weights_path:
        raise UserError(
            "--engine ktransformers needs --cpu-weights PATH: the GGUF folder (LLAMAFILE) or the kt-kernel-converted "
            "AMX weights; --model-path is the GPU-side Hugging Face checkpoint (e.g. the original FP8 DeepSeek-R1)"
        )
    gpu = mem.devices[0]
    frac = static_memory_fraction(gpu)
    cores = opts.threads or physical_cores(dep)
    n_gpu = gpu_expert_slots(dep, mem)
    argv = [
        "python3",
        "-m",
        "sglang.launch_server",
        "--model",
        opts.model_path,
        "--served-model-name",
        opts.served_name or dep.model_id,
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "--trust-remote-code",
        "--tp",
        str(max(1, dep.devices)),
        "--context-length",
        str(context_len(wl, opts)),
        "--mem-fraction-static",
        f"{frac:g}",
        "--max-running-requests",
        str(max(1, wl.concurrency)),
        *kv_flags(dep, "KTransformers (SGLang)"),
        "--kt-method",
        method,
        "--kt-weight-path",
        opts.cpu_weights_path,
    ]
    if cores:
        argv += ["--kt-cpuinfer", str(cores)]
    argv += [
        "--kt-threadpool-count",
        str(dep.cpu_sockets),
        "--kt-num-gpu-experts",
        str(n_gpu),
        "--kt-max-deferred-experts-per-token",
        "0",
    ]
    notes.append(
        f"--kt-num-gpu-experts {n_gpu}: experts per layer kept on the GPU, from half the {gpu.free_bytes / GB:,.1f} GB "
        "left free; raise it while GPU memory allows"
    )
    notes.append("--kt-threadpool-count assumes one NUMA node per socket; use the NUMA node count from lscpu")
    if dep.gpu_weights is not None:
        notes.append(
            f"--model must be the {dep.gpu_weights.id} Hugging Face checkpoint: the GPU side loads its "
            f"non-expert tensors ({gpu.weights_bytes / GB:,.1f} GB, as the memory plan counts them); "
            "the CPU experts come from --kt-weight-path"
        )
    if method == "LLAMAFILE":
        notes.append(
            "kt-kernel for LLAMAFILE on an AMX CPU: build it with CPUINFER_CPU_INSTRUCT=AVX512 CPUINFER_ENABLE_AMX=OFF"
        )
    notes.append(f"container image: build one with SGLang + kt-kernel (kt-kernel README); '{IMAGE}' is a local tag")
    return LaunchPlan(
        engine="ktransformers",
        launches=[Launch(argv=argv)],
        nodes=1,
        gpus_per_node=max(1, dep.devices),
        port=opts.port,
        model_path=opts.model_path,
        image=opts.image or IMAGE,
        checked_against=CHECKED,
        notes=notes,
        extra_mounts=[opts.cpu_weights_path],
    )
