"""Engine adapters: from a planned deployment to the exact launch commands.

`render(dep, mem, wl, opts, emit)` returns the text `dsdeploy deploy` writes. Each adapter module
(`vllm`, `sglang`, `llamacpp`, `ktransformers`) names the engine documentation and version its flags
were checked against, and refuses (UserError) a plan the engine cannot run, saying why.
"""

from __future__ import annotations

from dsdeploy.engines import ktransformers, llamacpp, sglang, vllm
from dsdeploy.engines.base import DeployOptions, Launch, LaunchPlan, mem_summary, require_fits
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
    plan = mod.build(dep, mem, wl, opts)
    plan.notes = list(dep.notes) + plan.notes
    return plan


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
