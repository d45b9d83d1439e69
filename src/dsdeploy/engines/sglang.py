"""SGLang adapter: `python3 -m sglang.launch_server` on GPUs, one node or several.

Flags checked against sgl-project/sglang docs/advanced_features/server_arguments.md @004813e (2026):
`--model-path`, `--served-model-name`, `--host`, `--port`, `--tp`/`--tp-size`, `--pp-size`,
`--dp`/`--dp-size`, `--enable-dp-attention` ("data parallelism for attention and tensor parallelism
for FFN"), `--ep-size`, `--context-length`, `--mem-fraction-static`, `--kv-cache-dtype`
∈ {auto, fp8_e5m2, fp8_e4m3, bf16, bfloat16, fp4_e2m1} (plain "fp8" is not a choice),
`--quantization` (modelopt_fp4, w8a8_int8, ...), `--device`, `--trust-remote-code`, and multi-node
`--dist-init-addr HOST:PORT --nnodes N --node-rank R` (same command on every node).

Engine-neutral parallelism (data/reference/measurements/SCHEMA.md "Parallelism") maps as: SGLang `--tp` = tp × dp_attention
(the whole group), `--dp` = dp_attention with `--enable-dp-attention`, `--ep-size` = ep,
`--pp-size` = pp. E.g. `--tp 8 --dp 8 --enable-dp-attention` is tp 1, dp_attention 8.
SGLang runs on CPU here only as generated commands: its CPU path failed for DeepSeek models on
this project's machines (data/reference/cpu-engine-notes.md), so nothing here is launched locally.
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
    refuse_mla_kv,
    refuse_nvfp4_off_blackwell,
    replica_note,
)
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import MemoryPlan, Workload, memory_fraction
from dsdeploy.specs.deployment import Deployment

CHECKED = "SGLang docs/advanced_features/server_arguments.md @004813e"
IMAGE = "lmsysorg/sglang:latest"
# AMD Instinct: the ROCm SGLang image pinned in rocm.docs.amd.com/projects/ai-ecosystem/en/latest/inference/sglang.html
IMAGE_AMD = "rocm/sgl-dev:v0.5.13.post1-ubuntu24.04-py3.14-rocm7.14"
DIST_PORT = 20000
KV = {"fp8": "fp8_e4m3", "bf16": "bf16"}


def local_launch(model_dir: str | Path, host: str, port: int, served_name: str, max_model_len: int) -> Launch:
    """The SGLang command for a local Hugging Face folder on one GPU (generated only: SGLang's CPU
    path does not run DeepSeek models on this project's CPU machines)."""
    return Launch(
        argv=[
            "python3",
            "-m",
            "sglang.launch_server",
            "--model-path",
            str(model_dir),
            "--host",
            str(host),
            "--port",
            str(port),
            "--served-model-name",
            str(served_name),
            "--context-length",
            str(int(max_model_len)),
            "--trust-remote-code",
        ]
    )


def kv_flags(dep: Deployment, engine: str = "SGLang") -> list[str]:
    refuse_mla_kv(dep, engine, ("bf16", "fp16", "fp8"))
    if dep.kv.id == "fp16":
        if dep.weights.id != "fp16":
            raise UserError(
                f"{engine} stores the KV cache in the model dtype or bf16/fp8; an fp16 KV cache needs fp16 weights"
            )
        return []
    return ["--kv-cache-dtype", KV[dep.kv.id]]


def quant_flags(dep: Deployment) -> list[str]:
    # fp8 / awq checkpoints carry their quantization_config and are detected automatically.
    return {
        "nvfp4": ["--quantization", "modelopt_fp4"],
        "int8": ["--quantization", "w8a8_int8"],
        "fp16": ["--dtype", "float16"],
        "bf16": ["--dtype", "bfloat16"],
    }.get(dep.weights.id, [])


def check(dep: Deployment) -> list[str]:
    notes: list[str] = []
    if dep.placement == "experts-on-cpu":
        raise UserError("SGLang keeps experts in CPU RAM only through kt-kernel: use --engine ktransformers")
    if dep.placement not in ("gpu", "cpu"):
        raise UserError(
            f"SGLang does not do placement '{dep.placement}' (it runs on GPUs, or CPU-only with --device cpu)"
        )
    if dep.weights.id.startswith("gguf-"):
        raise UserError(
            "SGLang does not serve DeepSeek GGUF files here; use llama.cpp, or --engine ktransformers for GGUF experts"
        )
    refuse_nvfp4_off_blackwell(dep, "SGLang")
    if dep.placement == "gpu" and dep.weights.id == "fp8" and not has_compute(dep, "fp8"):
        notes.append(
            f"{dep.accelerator.id if dep.accelerator else 'the CPU'} has no FP8 tensor cores: SGLang runs block-FP8 weights through its Triton/Marlin "
            "W8A16 fallback; converting to BF16 (fp8_cast_bf16.py) doubles weight memory"
        )
    p = dep.par
    group = p.tp * p.dp_attention
    if p.ep > 1 and group % p.ep:
        raise UserError(f"SGLang needs --ep-size {p.ep} to divide --tp {group} (tp × dp-attention)")
    return notes


def build(dep: Deployment, mem: MemoryPlan, wl: Workload, opts: DeployOptions) -> LaunchPlan:
    notes = check(dep) + replica_note(dep)
    p = dep.par
    group = p.tp * p.dp_attention
    argv = [
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        opts.model_path,
        "--served-model-name",
        opts.served_name or dep.model_id,
        "--host",
        opts.host,
        "--port",
        str(opts.port),
        "--trust-remote-code",
        "--tp",
        str(group),
    ]
    if p.dp_attention > 1:
        argv += ["--dp", str(p.dp_attention), "--enable-dp-attention"]
    if p.ep > 1:
        argv += ["--ep-size", str(p.ep)]
    if p.pp > 1:
        argv += ["--pp-size", str(p.pp)]
    argv += ["--context-length", str(context_len(wl, opts))]
    if dep.placement == "cpu":
        argv += ["--device", "cpu"]
        notes.append(
            "SGLang's CPU backend targets Xeons with AMX; its DeepSeek path failed on this project's AVX-512 test machine"
        )
    else:
        frac = memory_fraction(dep)  # the fraction the memory plan assumed
        argv += ["--mem-fraction-static", f"{frac:g}"]
    argv += kv_flags(dep) + quant_flags(dep) + list(opts.weights_flags)
    launches = []
    if dep.nodes == 1:
        launches.append(Launch(argv=argv))
    else:
        head = opts.head_addr or HEAD_PLACEHOLDER
        port = opts.dist_port or DIST_PORT
        for r in range(dep.nodes):
            launches.append(
                Launch(
                    argv=[
                        *argv,
                        "--dist-init-addr",
                        f"{head}:{port}",
                        "--nnodes",
                        str(dep.nodes),
                        "--node-rank",
                        str(r),
                    ],
                    node_rank=r,
                    role="server" if r == 0 else "worker",
                )
            )
        notes.append("the same command runs on every node with its own --node-rank; node 0 serves HTTP")
    return LaunchPlan(
        engine="sglang",
        launches=launches,
        nodes=dep.nodes,
        gpus_per_node=dep.per_node,
        port=opts.port,
        model_path=opts.model_path,
        image=opts.image or (IMAGE_AMD if dep.accelerator is not None and dep.accelerator.vendor == "amd" else IMAGE),
        checked_against=CHECKED,
        notes=notes,
        uses_gpu=dep.placement != "cpu",
    )
