"""Engine adapters: from a planned deployment to the exact launch commands.

`render(dep, mem, wl, opts, emit)` returns the text `dsdeploy deploy` writes. Each adapter module
(`vllm`, `sglang`, `llamacpp`, `ktransformers`) names the engine documentation and version its flags
were checked against, and refuses (UserError) a plan the engine cannot run, saying why.
"""

from __future__ import annotations

import dataclasses

from dsdeploy.engines import ktransformers, llamacpp, sglang, vllm
from dsdeploy.engines.base import (
    DeployOptions,
    Launch,
    LaunchPlan,
    WeightSource,
    check_max_model_len,
    default_max_model_len,
    mem_summary,
    require_fits,
    weight_source,
)
from dsdeploy.engines.emit import EMITS, emit
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import GB, MemoryPlan, Workload
from dsdeploy.specs.deployment import Deployment

ADAPTERS = {
    "vllm": vllm,
    "sglang": sglang,
    "llama.cpp": llamacpp,
    "ktransformers": ktransformers,
}

__all__ = ["ADAPTERS", "DeployOptions", "EMITS", "Launch", "LaunchPlan", "build_launch_plan", "render", "summary_lines"]


def adapter(engine_id: str):
    mod = ADAPTERS.get(engine_id)
    if mod is None:
        raise UserError(
            f"dsdeploy cannot generate launch commands for engine '{engine_id}' yet; it can for {', '.join(ADAPTERS)}"
        )
    return mod


def build_launch_plan(
    dep: Deployment, mem: MemoryPlan, wl: Workload, opts: DeployOptions, force: bool = False
) -> LaunchPlan:
    mod = adapter(dep.engine.id)
    require_fits(mem, force)
    # one request lives in one attention group of one replica: its share of the planned KV capacity
    per_group = mem.kv_capacity_tokens // max(1, dep.par.dp_attention * dep.replicas)
    opts = with_max_model_len(dep, wl, opts, per_group, static_kv=getattr(mod, "STATIC_KV", False))
    src = weights_of(dep)
    opts = dataclasses.replace(opts, weights_flags=src.flags)
    plan = mod.build(dep, mem, wl, opts)
    plan.notes = list(dep.notes) + list(src.notes) + plan.notes
    if dep.accelerator is not None and plan.uses_gpu:
        plan.gpu_vendor = dep.accelerator.vendor
    if dep.nodes > 1:
        plan.fabric = fabric_line(dep)
    return plan


def fabric_line(dep: Deployment) -> str:
    """What a multi-node plan expects between nodes: the planned scale-out link, GPUDirect RDMA."""
    link = dep.scale_out
    name = f"{link.name} ({link.uni_gbs.value:g} GB/s per direction per GPU)" if link is not None else "not planned"
    return (
        f"{dep.nodes} nodes over {name}; the plan's communication times assume GPUDirect RDMA on that fabric. "
        "Check `ibv_devinfo` on every node and set NCCL_IB_HCA (InfiniBand/RoCE) or NCCL_SOCKET_IFNAME; "
        "over plain TCP, NCCL falls back to sockets and inter-node steps are many times slower"
    )


def weights_of(dep: Deployment) -> WeightSource:
    """`weight_source` with the catalog's native format and published checkpoint for this model."""
    from dsdeploy.catalog import load_catalog, load_checkpoints

    m = load_catalog().models.get(dep.model_id)
    if m is None:  # a config.json outside the catalog: its own checkpoint is what it is
        return WeightSource()
    ck = load_checkpoints().get((dep.model_id, dep.weights.id))
    return weight_source(dep, m.native_weights, ck.repo if ck else "", ck.source if ck else "")


def reasoning_tokens(model_id: str) -> int:
    """The catalog's reasoning budget for a model (0 for a model that does not reason first)."""
    from dsdeploy.catalog import load_catalog

    m = load_catalog().models.get(model_id)
    return int(m.reasoning_tokens.value) if m is not None and m.reasoning_tokens is not None else 0


def with_max_model_len(
    dep: Deployment, wl: Workload, opts: DeployOptions, kv_capacity: int = 0, static_kv: bool = False
) -> DeployOptions:
    """`opts` with the context limit the engine is launched with: the user's --max-model-len
    (checked against the model's limit), else `default_max_model_len` with the reasoning budget.
    An engine that allocates every slot's KV up front (`static_kv`, llama.cpp) keeps the planned
    input + output, since a longer limit would allocate memory the plan did not count."""
    if opts.max_model_len:
        return dataclasses.replace(opts, max_model_len=check_max_model_len(dep, wl, opts.max_model_len))
    budget = 0 if static_kv else reasoning_tokens(dep.model_id)
    return dataclasses.replace(opts, max_model_len=default_max_model_len(dep, wl, budget, kv_capacity))


def summary_lines(dep: Deployment, mem: MemoryPlan, wl: Workload) -> list[str]:
    p = dep.par
    lines = [
        f"plan: {dep.describe()}; tp={p.tp} pp={p.pp} ep={p.ep} dp_attention={p.dp_attention}",
        f"workload: {wl.input_len} in + {wl.output_len} out tokens, {wl.concurrency} concurrent; "
        f"memory plan: {'fits' if mem.fits else 'DOES NOT FIT'} ({mem.binding} binding)",
        f"memory: {mem_summary(mem)}",
    ]
    return lines


def render(dep: Deployment, mem: MemoryPlan, wl: Workload, opts: DeployOptions, fmt: str, force: bool = False) -> str:
    if fmt not in EMITS:
        raise UserError(f"--emit must be one of {', '.join(EMITS)}; got '{fmt}'")
    plan = build_launch_plan(dep, mem, wl, opts, force)
    title = f"dsdeploy deploy: {dep.describe()}"
    return emit(plan, fmt, title, summary_lines(dep, mem, wl))


def gb(x: float) -> str:
    return f"{x / GB:,.1f} GB"
