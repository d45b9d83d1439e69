"""The planner: evaluate a deployment, search for ones that fit, and assemble the verdict.

It composes the estimators (memory, and performance where available) and returns plain data that
the edges render. It does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.schema import Accelerator, Placement, Sourced, record_reads
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import MemoryPlan, Workload, plan_memory
from dsdeploy.estimators.performance import hbm_gbs
from dsdeploy.planner.options import DeploymentOptions, build
from dsdeploy.specs.deployment import Deployment, default_engine
from dsdeploy.specs.model import ModelSpec

COUNTS_PER_NODE = (1, 2, 3, 4, 5, 6, 7, 8)
MAX_NODES = 4


class AlternativeSummary(TypedDict):
    """One evaluated deployment in a plan's `alternatives` and `plan --min-count`'s `results`."""

    label: str
    weights: str
    engine: str
    placement: Placement
    accelerator: str | None
    accelerators_per_node: int
    nodes: int
    cpu: str | None
    dram_gb: float | None
    tp: int
    pp: int
    ep: int
    dp_attention: int
    fits: bool
    weights_bytes_total: int
    kv_capacity_tokens: int
    max_concurrency: int
    requests_at_context: int
    context_tokens: int
    performance: NotRequired[dict[str, Any]]


@dataclass
class Evaluated:
    deployment: Deployment
    memory: MemoryPlan
    label: str = ""
    performance: dict | None = None

    def summary(self, wl: Workload) -> AlternativeSummary:
        d, m = self.deployment, self.memory
        out: AlternativeSummary = {
            "label": self.label or d.describe(),
            "weights": d.weights.id,
            "engine": d.engine.id,
            "placement": d.placement,
            "accelerator": d.accelerator.id if d.accelerator else None,
            "accelerators_per_node": d.per_node,
            "nodes": d.nodes,
            "cpu": d.cpu.id if d.cpu else None,
            "dram_gb": d.dram_gb,
            "tp": d.par.tp,
            "pp": d.par.pp,
            "ep": d.par.ep,
            "dp_attention": d.par.dp_attention,
            "fits": m.fits,
            "weights_bytes_total": m.weights_bytes_total,
            "kv_capacity_tokens": m.kv_capacity_tokens,
            "max_concurrency": m.max_concurrency,
            "requests_at_context": m.max_concurrency,
            "context_tokens": wl.tokens_per_request,
        }
        if self.performance:
            out["performance"] = self.performance
        return out


def _catalog_inputs(dep: Deployment) -> Iterator[tuple[str, Sourced]]:
    """(name, figure) for every catalog figure the deployment carries: 'h100-sxm memory_gb',
    'fp8 bpw[attention]', 'vllm max_batched_tokens', ..."""
    parts = (dep.accelerator, dep.cpu, dep.weights, dep.gpu_weights, dep.kv, dep.engine)
    links = (dep.scale_up, dep.host_link, dep.scale_out)
    for obj in (*parts, *links):
        if obj is None:
            continue
        for field, v in obj.__dict__.items():
            if isinstance(v, Sourced):
                yield f"{obj.id} {field}", v
            elif isinstance(v, dict):
                for key, s in v.items():
                    if isinstance(s, Sourced):
                        yield f"{obj.id} {field}[{key}]", s


def unconfirmed_inputs(dep: Deployment, wl: Workload, reads: Iterable[Sourced] = ()) -> list[str]:
    """Every UNCONFIRMED catalog figure this deployment's plan reads: what its memory plan for `wl`
    reads (run under `record_reads`; the estimators are pure, so it reads what the plan read), plus
    `reads`, recorded by the caller around the other estimators it ran (plan_result: performance).
    A bits-per-weight figure counts only for a tensor class holding more than 1 % of the parameters."""
    with record_reads() as seen:
        plan_memory(dep, wl)
    seen.update((id(s), s) for s in reads)
    params = dep.model.params_by_component()
    out: list[str] = []
    for name, s in _catalog_inputs(dep):
        if id(s) not in seen or not s.unconfirmed:
            continue
        if "bpw[" in name and params.get(name.split("[")[1].rstrip("]"), 0) <= 0.01 * dep.model.params_total:
            continue
        out.append(f"{name} = {s.value:g} ({s.source})")
    return list(dict.fromkeys(out))


Verdict = Literal["fits", "queues", "does not fit"]


def verdict(m: MemoryPlan) -> Verdict:
    """'fits'; 'queues' when the weights fit and the KV cache holds at least one request but fewer
    than the requested concurrency (the engine admits what fits and the rest wait: vLLM/SGLang
    schedule by free KV blocks, llama.cpp by slots); 'does not fit' when not even one request does."""
    if m.fits:
        return "fits"
    return "queues" if m.binding == "kv" and m.max_concurrency >= 1 else "does not fit"


def accelerator_of(ev: Evaluated) -> Accelerator:
    """The accelerator of a GPU-placed candidate (min_count only builds those)."""
    assert ev.deployment.accelerator is not None
    return ev.deployment.accelerator


def evaluate(dep: Deployment, wl: Workload, label: str = "") -> Evaluated:
    return Evaluated(deployment=dep, memory=plan_memory(dep, wl), label=label)


def _try(catalog: Catalog, model_id: str, spec: ModelSpec, wl: Workload, **kw) -> Evaluated | None:
    """A search candidate through the one options → deployment path; None if it cannot run.
    Candidates state their hardware in full: no accelerator means CPU only, not the default."""
    if kw.get("accelerator") is None:
        kw["accelerator"] = "none"
    try:
        dep = build(DeploymentOptions(model=model_id, **kw), catalog, (model_id, spec))
    except UserError:
        return None
    return evaluate(dep, wl)


def format_runs_on(catalog: Catalog, fmt_id: str, accelerator_id: str | None, placement: str) -> bool:
    """Whether the format runs on the hardware (catalog data, formats.toml: `only_vendor`,
    `only_placement`, `on_cpu`, `on_unified`, `runs_on_arch`; else its compute dtype or its fallback
    exists there)."""
    fmt = catalog.format(fmt_id)
    acc = catalog.accelerator(accelerator_id) if accelerator_id is not None else None
    if fmt.only_vendor is not None:
        return acc is not None and acc.vendor == fmt.only_vendor
    if fmt.only_placement is not None:
        return placement == fmt.only_placement
    if acc is None or placement == "cpu":
        return fmt.on_cpu
    if acc.unified_memory:
        return fmt.on_unified
    if not fmt.runs_on(acc.arch):  # kernels only on some architectures (NVFP4: Blackwell)
        return False
    if fmt.compute in acc.tflops:
        return True
    return fmt.fallback is not None and fmt.fallback in acc.tflops


def min_count(
    catalog: Catalog,
    model_id: str,
    spec: ModelSpec,
    weights: str,
    kv_dtype: str,
    wl: Workload,
    accelerator: str,
    engine: str | None = None,
) -> Evaluated | None:
    """The fewest accelerators of one kind (1–8 per node, up to 4 nodes) that hold the model and
    the workload's KV cache. Layout: TP within a node, PP across nodes."""
    if not format_runs_on(catalog, weights, accelerator, "gpu"):
        return None
    best: Evaluated | None = None
    for nodes in range(1, MAX_NODES + 1):
        for per_node in COUNTS_PER_NODE:
            if per_node < 8 and nodes > 1:
                continue  # multi-node deployments use full nodes
            total = per_node * nodes
            if best is not None and total >= best.deployment.devices:
                continue
            ev = _try(
                catalog,
                model_id,
                spec,
                wl,
                weights=weights,
                kv_dtype=kv_dtype,
                accelerator=accelerator,
                count=per_node,
                nodes=nodes,
                engine=engine,
                placement="gpu",
                tp=per_node,
                pp=nodes,
            )
            if ev is not None and ev.memory.fits:
                best = ev
                break
        if best is not None:
            break
    return best


def min_count_all(
    catalog: Catalog, model_id: str, spec: ModelSpec, weights: str, kv_dtype: str, wl: Workload
) -> list[Evaluated]:
    out = []
    for acc in catalog.accelerators.values():
        if acc.unified_memory:
            continue
        ev = min_count(catalog, model_id, spec, weights, kv_dtype, wl, acc.id)
        if ev is not None:
            out.append(ev)
    out.sort(key=lambda e: (e.deployment.devices, -e.memory.kv_capacity_tokens))
    return out


def best_format(
    catalog: Catalog,
    model_id: str,
    spec: ModelSpec,
    wl: Workload,
    kv_dtype: str = "bf16",
    accept: Callable[[Evaluated], bool] | None = None,
    **hw,
) -> Evaluated | None:
    """For given hardware, the highest-quality weight format that fits (quality_rank order). On several
    GPUs the tensor-parallel formats are tried first; a GGUF is the fallback when none of them fits
    (llama.cpp splits its layers across the GPUs, `--split-mode layer`, its default)."""
    placement = hw.get("placement")
    acc = hw.get("accelerator")
    gpus = (hw.get("count") or 0) * (hw.get("nodes") or 1)
    pl = placement or ("cpu" if acc is None else ("unified" if catalog.accelerator(acc).unified_memory else "gpu"))
    layer_split_last = pl == "gpu" and gpus > 1
    order = sorted(
        catalog.formats.values(), key=lambda f: (layer_split_last and f.id.startswith("gguf-"), f.quality_rank, f.id)
    )
    for fmt in order:
        if not format_runs_on(catalog, fmt.id, acc, pl):
            continue
        kw = dict(hw)
        kw.pop("engine", None)
        ev = _try(catalog, model_id, spec, wl, weights=fmt.id, kv_dtype=kv_dtype, engine=default_engine(fmt, pl), **kw)
        if ev is not None and ev.memory.fits and (accept is None or accept(ev)):
            return ev
    return None


@dataclass
class ModelSearch:
    """`plan --best-model`: the chosen deployment (None if no model fits) and, for each more capable
    model, why it was passed over."""

    found: Evaluated | None
    passed_over: list[dict[str, str]]


def best_model(
    catalog: Catalog,
    wl: Workload,
    kv_dtype: str = "bf16",
    accept: Callable[[Evaluated], bool] | None = None,
    why_not_accepted: str = "",
    **hw,
) -> ModelSearch:
    """For given hardware, the most capable catalog DeepSeek model (models.toml `capability_rank`) in
    the best format that fits (`best_format`), and that `accept`s (e.g. meets SLOs)."""
    from dsdeploy.specs.model import load_model_spec

    ranked = sorted(
        (m for m in catalog.models.values() if m.capability_rank is not None),
        key=lambda m: (m.capability_rank.value if m.capability_rank else 0, m.id),
    )
    passed: list[dict[str, str]] = []
    for m in ranked:
        spec = load_model_spec(m.id)
        ev = _best_over_placements(catalog, m.id, spec, wl, kv_dtype, accept, hw)
        if ev is not None:
            return ModelSearch(ev, passed)
        fits = accept is not None and _best_over_placements(catalog, m.id, spec, wl, kv_dtype, None, hw) is not None
        passed.append({"model": m.id, "why": why_not_accepted if fits else "no catalog weight format fits"})
    return ModelSearch(None, passed)


def _best_over_placements(
    catalog: Catalog, model_id: str, spec: ModelSpec, wl: Workload, kv_dtype: str, accept, hw: dict
) -> Evaluated | None:
    """best_format over the placements the hardware allows: the stated one; else, with an accelerator and
    host memory (--cpu / --dram-gb), all on the GPU, the routed experts in DRAM, or layers split. The
    highest-quality format wins; on a tie, the earlier placement."""
    if hw.get("placement") or hw.get("accelerator") in (None, "none"):
        return best_format(catalog, model_id, spec, wl, kv_dtype, accept=accept, **hw)
    host = hw.get("dram_gb") is not None or hw.get("cpu") is not None
    placements = ("gpu", "experts-on-cpu", "layer-split") if host else ("gpu",)
    found = [
        ev
        for p in placements
        if (ev := best_format(catalog, model_id, spec, wl, kv_dtype, accept=accept, **{**hw, "placement": p}))
    ]
    return min(found, key=lambda e: e.deployment.weights.quality_rank, default=None)


def _same_hardware_best(catalog: Catalog, dep: Deployment, wl: Workload) -> list[tuple[Evaluated | None, str]]:
    """1. the same hardware, best format that fits."""
    acc = dep.accelerator.id if dep.accelerator else None
    if not acc:
        return []
    ev = best_format(
        catalog,
        dep.model_id,
        dep.model,
        wl,
        kv_dtype=dep.kv.id,
        accelerator=acc,
        count=dep.per_node,
        nodes=dep.nodes,
        placement=dep.placement,
        cpu=dep.cpu.id if dep.cpu else None,
        cpu_sockets=dep.cpu_sockets,
        dram_gb=dep.dram_gb,
    )
    return [(ev, f"{ev.deployment.weights.id} on the same {dep.devices}× {acc}")] if ev else []


def _more_of_the_same(
    catalog: Catalog, dep: Deployment, wl: Workload, native: str
) -> list[tuple[Evaluated | None, str]]:
    """2. the native and the requested format on the same accelerator, more of them."""
    if dep.accelerator is None or dep.placement != "gpu":
        return []
    acc = dep.accelerator.id
    out: list[tuple[Evaluated | None, str]] = []
    for w in dict.fromkeys([native, dep.weights.id]):
        ev = min_count(catalog, dep.model_id, dep.model, w, dep.kv.id, wl, acc)
        if ev:
            d = ev.deployment
            out.append((ev, f"{w} on {d.devices}× {acc}" + (f" across {d.nodes} nodes" if d.nodes > 1 else "")))
    return out


def _bigger_accelerator(
    catalog: Catalog, dep: Deployment, wl: Workload, native: str
) -> list[tuple[Evaluated | None, str]]:
    """3. the native format on one node of a bigger accelerator (8-GPU HGX/DGX-class servers first:
    the unit most teams buy): the smallest memory that fits (usually the cheapest step up), then the fastest."""
    singles = [
        c
        for c in min_count_all(catalog, dep.model_id, dep.model, native, dep.kv.id, wl)
        if c.deployment.nodes == 1 and _acc(c).hw_class == "datacenter-gpu"
    ]
    singles.sort(key=lambda c: (c.deployment.devices != 8, _acc(c).memory_gb.unconfirmed, _acc(c).memory_gb.value))
    if len(singles) > 1:
        rest = sorted(singles[1:], key=lambda c: -hbm_gbs(_acc(c)))
        singles = [singles[0], rest[0]]
    return [(c, f"{native} on {c.deployment.devices}× {_acc(c).id}") for c in singles[:2]]


def _acc(ev: Evaluated) -> Accelerator:
    """The accelerator of a GPU search result (min_count only returns deployments that have one)."""
    acc = ev.deployment.accelerator
    assert acc is not None
    return acc


def _four_bit(catalog: Catalog, dep: Deployment, wl: Workload) -> list[tuple[Evaluated | None, str]]:
    """4. a 4-bit format on the same accelerator count."""
    if dep.accelerator is None or dep.placement != "gpu":
        return []
    acc = dep.accelerator.id
    ev = _try(
        catalog,
        dep.model_id,
        dep.model,
        wl,
        weights="awq-int4",
        kv_dtype=dep.kv.id,
        accelerator=acc,
        count=dep.per_node,
        nodes=dep.nodes,
        placement="gpu",
    )
    return [(ev, f"awq-int4 on {dep.devices}× {acc}")]


def _one_consumer_gpu(catalog: Catalog, dep: Deployment, wl: Workload) -> list[tuple[Evaluated | None, str]]:
    """5. one 24 GB GPU with the experts in 512 GB of DRAM (MoE), or a single-GPU GGUF (dense)."""
    if dep.model.is_moe:
        ev = _try(
            catalog,
            dep.model_id,
            dep.model,
            Workload(wl.input_len, wl.output_len, 1),
            weights="gguf-q4_k_m",
            kv_dtype=dep.kv.id,
            accelerator="rtx-4090",
            count=1,
            placement="experts-on-cpu",
            cpu=dep.cpu.id if dep.cpu else "epyc-9654",
            dram="ddr5-4800",
            dram_gb=512,
        )
        return [(ev, "experts on CPU: 1× rtx-4090 (24 GB) + 512 GB DDR5, gguf-q4_k_m, llama.cpp -ot exps=CPU")]
    ev = best_format(catalog, dep.model_id, dep.model, wl, kv_dtype=dep.kv.id, accelerator="rtx-4090", count=1)
    return [(ev, f"{ev.deployment.weights.id} on 1× rtx-4090")] if ev else []


def _key(d: Deployment) -> tuple:
    return (d.weights.id, d.accelerator.id if d.accelerator else None, d.devices, d.placement)


def alternatives(catalog: Catalog, dep: Deployment, wl: Workload, limit: int = 8) -> list[Evaluated]:
    """Deployments that do fit, for a plan that does not (or to compare with one that does):
    the five searches above, in order, each deployment once and never the plan's own."""
    mid = dep.model_id
    native = catalog.model(mid).native_weights if mid in catalog.models else dep.weights.id
    seen: set[tuple] = {_key(dep)}
    out: list[Evaluated] = []
    found = (
        _same_hardware_best(catalog, dep, wl)
        + _more_of_the_same(catalog, dep, wl, native)
        + _bigger_accelerator(catalog, dep, wl, native)
        + _four_bit(catalog, dep, wl)
        + _one_consumer_gpu(catalog, dep, wl)
    )
    for ev, label in found:
        if ev is None or not ev.memory.fits or _key(ev.deployment) in seen:
            continue
        seen.add(_key(ev.deployment))
        ev.label = label
        out.append(ev)
    return out[:limit]
