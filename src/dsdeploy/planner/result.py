"""Assemble the planner's answers as plain, JSON-ready dicts (the `--json` machine interface).

Every number here comes from the estimators (`estimators.memory`, `estimators.performance` where
that module exists) or from `ModelSpec`; this module only gathers them, names them, and labels how
far each can be trusted. The key set of `plan_result` is a stable interface documented in
docs/plan-json-schema.md; add keys, never rename or remove them.

Labels (the `labels` key):
- ``spec``: read from a datasheet or a config file (catalog value with a source);
- ``derived``: arithmetic on spec values with a stated formula;
- ``unconfirmed``: rests on at least one catalog figure marked UNCONFIRMED (an estimate);
- ``calibrated``: a model fitted to measurements (the performance estimator with a calibration);
- ``measured``: a measurement (never produced by the planner itself).
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.schema import record_reads
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import Workload
from dsdeploy.planner import plan as planner
from dsdeploy.planner.plan import Evaluated
from dsdeploy.specs.deployment import Deployment
from dsdeploy.specs.model import ModelSpec

# Context lengths at which `model_summary` reports decode FLOPs per token.
FLOP_CONTEXTS = (0, 1024, 4096, 32768, 131072)


# ---------------------------------------------------------------------------------- performance
def performance_module():
    """The performance estimator if this build has it, else None (then plans omit performance)."""
    try:
        return importlib.import_module("dsdeploy.estimators.performance")
    except ImportError:
        return None


def load_calibration(path: str | None):
    """A calibration for the performance model, or None. A path given without a performance model
    in this build is an error (silently ignoring it would mislead)."""
    try:
        cal = importlib.import_module("dsdeploy.estimators.calibration")
    except ImportError:
        if path:
            raise UserError("--calibration needs the performance estimator, which this build does not have") from None
        return None
    return cal.load_calibration(path)


# ---------------------------------------------------------------------------------- pieces
def _hardware(dep: Deployment) -> dict[str, Any]:
    acc = dep.accelerator
    return {
        "accelerator": acc.id if acc else None,
        "accelerator_name": acc.name if acc else None,
        "accelerators_per_node": dep.per_node,
        "nodes": dep.nodes,
        "devices": dep.devices,
        "memory_gb_per_device": acc.memory_gb.value if acc else None,
        "cpu": dep.cpu.id if dep.cpu else None,
        "cpu_sockets": dep.cpu_sockets,
        "dram": dep.dram.label if dep.dram else None,
        "dram_gb": dep.dram_gb,
        "scale_up_link": dep.scale_up.id if dep.scale_up else None,
        "host_link": dep.host_link.id if dep.host_link else None,
        "scale_out_link": dep.scale_out.id if dep.scale_out else None,
    }


def _parallelism(dep: Deployment) -> dict[str, int]:
    p = dep.par
    return {
        "tp": p.tp,
        "pp": p.pp,
        "ep": p.ep,
        "dp_attention": p.dp_attention,
        "instance_devices": p.instance_devices,
        "replicas": dep.replicas,
    }


def _workload(wl: Workload) -> dict[str, int]:
    return {
        "input_len": wl.input_len,
        "output_len": wl.output_len,
        "concurrency": wl.concurrency,
        "tokens_per_request": wl.tokens_per_request,
    }


def binding_text(ev: Evaluated, wl: Workload) -> str:
    """The binding constraint, in words (numbers are the plan's own)."""
    m = ev.memory
    dev = min(m.devices, key=lambda d: d.kv_space_bytes)
    if m.binding == "weights":
        return (
            f"memory for the weights: {dev.name} must hold {dev.weights_bytes / 1e9:,.1f} GB of weights plus "
            f"{(dev.activation_bytes + dev.overhead_bytes) / 1e9:,.1f} GB of activations and runtime overhead, "
            f"but only {dev.usable_bytes / 1e9:,.1f} GB of its {dev.capacity_bytes / 1e9:,.0f} GB is usable "
            f"under {ev.deployment.engine.id}'s memory policy"
        )
    if m.binding == "kv":
        return (
            f"KV-cache memory: after the weights, {dev.name} has room for {m.kv_capacity_tokens:,} tokens of KV cache, "
            f"{m.max_concurrency} requests of {wl.tokens_per_request:,} tokens, fewer than the {wl.concurrency} requested"
        )
    return (
        f"nothing binds at this workload; the KV cache is the limit on concurrency: {m.kv_capacity_tokens:,} tokens, "
        f"i.e. {m.max_concurrency} concurrent requests of {wl.tokens_per_request:,} tokens"
    )


def _labels(dep: Deployment, unconfirmed: list[str], perf: dict | None) -> dict[str, str]:
    memory_label = "unconfirmed" if unconfirmed else "derived"
    acc = dep.accelerator
    cap_label = (acc.memory_gb.label if acc else "spec") if dep.placement != "cpu" else "spec"
    bpw_labels = {s.label for s in dep.weights.bpw.values()}
    weights_label = (
        "spec"
        if dep.model.gguf_component_bytes is not None
        else ("unconfirmed" if "unconfirmed" in bpw_labels else "derived")
    )
    labels = {
        "model": "spec",
        "weights_bytes_total": weights_label,
        "weights_by_component": weights_label,
        "kv_bytes_per_token": "derived",
        "per_device.capacity_bytes": cap_label,
        "per_device.usable_bytes": "unconfirmed"
        if (dep.engine.memory_fraction and dep.engine.memory_fraction.unconfirmed)
        else "derived",
        "per_device.weights_bytes": weights_label,
        "per_device.kv_bytes": "derived",
        "per_device.activation_bytes": "unconfirmed" if dep.engine.max_batched_tokens.unconfirmed else "derived",
        "per_device.overhead_bytes": "unconfirmed",
        "per_device.free_bytes": memory_label,
        "fits": memory_label,
        "kv_capacity_tokens": memory_label,
        "max_concurrency": memory_label,
    }
    if perf is not None:
        labels["performance"] = str(perf.get("label") or "derived")
    return labels


def plan_result(
    catalog: Catalog,
    ev: Evaluated,
    wl: Workload,
    alternatives: list[Evaluated] | None = None,
    calibration=None,
    with_performance: bool = True,
) -> dict[str, Any]:
    """The full answer for one deployment: verdict, memory per device, alternatives, performance."""
    dep, m = ev.deployment, ev.memory
    unconfirmed: list[str] = []  # filled below, from what the memory and performance models read
    v = planner.verdict(m)
    out: dict[str, Any] = {
        "fits": m.fits,
        "verdict": v,
        "reason": _queue_reason(m, wl) if v == "queues" else m.reason,
        "binding": m.binding,
        "binding_text": binding_text(ev, wl),
        "weights_bytes_total": int(m.weights_bytes_total),
        "per_device": [_device_dict(d) for d in m.devices],
        "kv_capacity_tokens": int(m.kv_capacity_tokens),
        "max_concurrency": int(m.max_concurrency),
        "alternatives": [a.summary(wl) for a in (alternatives or [])],
        "model": dep.model_id,
        "weights": dep.weights.id,
        "kv_dtype": dep.kv.id,
        "engine": dep.engine.id,
        "placement": dep.placement,
        "mtp": dep.mtp,
        "description": dep.describe(),
        "hardware": _hardware(dep),
        "parallelism": _parallelism(dep),
        "workload": _workload(wl),
        "weights_by_component": {k: int(v) for k, v in m.weights_by_component.items()},
        "kv_bytes_per_token": _num(m.kv_bytes_per_token),
        "gpu_layers": m.gpu_layers,
        "notes": list(dep.notes) + list(m.notes),
        "unconfirmed": unconfirmed,
    }
    perf_dict = None
    mod = performance_module() if with_performance else None
    with record_reads() as perf_reads:
        if mod is not None and v != "does not fit":
            run = wl if m.fits else Workload(wl.input_len, wl.output_len, m.max_concurrency)  # queues: what runs
            perf_dict = mod.predict(dep, run, calibration=calibration).to_dict()
            out["performance"] = perf_dict
            out["performance_sweep"] = [
                p.to_dict() for p in mod.sweep(dep, wl, m.max_concurrency, calibration=calibration)
            ]
    unconfirmed += planner.unconfirmed_inputs(dep, wl, perf_reads.values())
    out["labels"] = _labels(dep, unconfirmed, perf_dict)
    return out


def _queue_reason(m, wl: Workload) -> str:
    n = m.max_concurrency
    return (
        f"queues: the weights fit and the KV cache holds {m.kv_capacity_tokens:,} tokens, {n:,} requests of "
        f"{wl.tokens_per_request:,} tokens at once; the other {wl.concurrency - n:,} of the {wl.concurrency:,} "
        f"requested wait for a free slot"
    )


def _device_dict(d) -> dict[str, Any]:
    row = d.to_dict()
    # keep the documented key order
    keys = (
        "name",
        "kind",
        "count",
        "weights_bytes",
        "kv_bytes",
        "activation_bytes",
        "overhead_bytes",
        "capacity_bytes",
        "usable_bytes",
        "free_bytes",
    )
    return {k: row[k] for k in keys} | {"kv_bytes_per_token": _num(d.kv_bytes_per_token)}


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


# ---------------------------------------------------------------------------------- searches
def min_count_result(
    catalog: Catalog, model_id: str, spec: ModelSpec, weights: str, kv_dtype: str, wl: Workload
) -> dict[str, Any]:
    """`plan --min-count`: the fewest devices of each catalog accelerator that hold the workload."""
    found = planner.min_count_all(catalog, model_id, spec, weights, kv_dtype, wl)
    fitting = {planner.accelerator_of(e).id for e in found}
    skipped = []
    for acc in catalog.accelerators.values():
        if acc.unified_memory or acc.id in fitting:
            continue
        why = (
            f"{weights} cannot run on {acc.id} (no {catalog.format(weights).compute} support)"
            if not planner.format_runs_on(catalog, weights, acc.id, "gpu")
            else f"does not fit on up to {planner.MAX_NODES} nodes of 8"
        )
        skipped.append({"accelerator": acc.id, "why": why})
    return {
        "mode": "min-count",
        "model": model_id,
        "weights": weights,
        "kv_dtype": kv_dtype,
        "workload": _workload(wl),
        "results": [e.summary(wl) for e in found],
        "not_fitting": skipped,
        "search": {"counts_per_node": list(planner.COUNTS_PER_NODE), "max_nodes": planner.MAX_NODES},
    }


def best_format_result(
    catalog: Catalog, model_id: str, spec: ModelSpec, wl: Workload, kv_dtype: str, calibration=None, **hw
) -> dict[str, Any]:
    """`plan --best-format`: the best-quality weight format that fits the given hardware."""
    ev = planner.best_format(catalog, model_id, spec, wl, kv_dtype=kv_dtype, **hw)
    if ev is None:
        return {
            "mode": "best-format",
            "found": False,
            "model": model_id,
            "kv_dtype": kv_dtype,
            "workload": _workload(wl),
            "hardware_request": {k: v for k, v in hw.items() if v is not None},
            "reason": "no catalog weight format fits this hardware at this workload",
        }
    res = plan_result(catalog, ev, wl, calibration=calibration)
    res["mode"] = "best-format"
    res["found"] = True
    return res


def _slo_check(wl: Workload, calibration, ttft_ms: float | None, tpot_ms: float | None):
    """(accept, why not) for `best_model`: the predicted TTFT/TPOT at the workload within the SLOs."""
    if ttft_ms is None and tpot_ms is None:
        return None, ""
    mod = performance_module()
    if mod is None:
        raise UserError("--ttft-ms/--tpot-ms need the performance model (dsdeploy.estimators.performance)")

    def accept(ev: Evaluated) -> bool:
        p = mod.predict(ev.deployment, wl, calibration=calibration)
        return (ttft_ms is None or p.ttft_ms <= ttft_ms) and (tpot_ms is None or p.tpot_ms <= tpot_ms)

    slo = ", ".join(f"{k} ≤ {v:g} ms" for k, v in (("TTFT", ttft_ms), ("TPOT", tpot_ms)) if v is not None)
    return accept, f"fits, but no format of it meets the SLOs ({slo}) at this workload"


def best_model_result(
    catalog: Catalog,
    wl: Workload,
    kv_dtype: str,
    calibration=None,
    ttft_ms: float | None = None,
    tpot_ms: float | None = None,
    **hw,
) -> dict[str, Any]:
    """`plan --best-model`: the most capable DeepSeek model and format that fit the given hardware
    (and meet the SLOs, if given), with the reason and the more capable models passed over."""
    accept, why = _slo_check(wl, calibration, ttft_ms, tpot_ms)
    search = planner.best_model(catalog, wl, kv_dtype, accept=accept, why_not_accepted=why, **hw)
    head = {
        "mode": "best-model",
        "slo": {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms},
        "passed_over": search.passed_over,
    }
    ev = search.found
    if ev is None:
        return head | {
            "found": False,
            "kv_dtype": kv_dtype,
            "workload": _workload(wl),
            "hardware_request": {k: v for k, v in hw.items() if v is not None},
            "reason": "no catalog DeepSeek model fits this hardware at this workload"
            + (" within the SLOs" if accept else ""),
        }
    dep = ev.deployment
    rank = catalog.models[dep.model_id].capability_rank
    assert rank is not None  # best_model only ranks models that have one
    above = ", ".join(f"{p['model']} ({p['why']})" for p in search.passed_over)
    reason = (
        f"{dep.model_id} is the most capable catalog DeepSeek model (capability rank {rank.value:g}: {rank.source}) "
        f"that fits {dep.describe().split(' on ', 1)[-1]}"
        + (" within the SLOs" if accept else "")
        + f"; {dep.weights.id} is its best-quality format that does (quality rank {dep.weights.quality_rank})"
        + (f". More capable, passed over: {above}" if above else "")
    )
    res = plan_result(catalog, ev, wl, calibration=calibration)
    return res | head | {"found": True, "best_model_reason": reason}


# ---------------------------------------------------------------------------------- model
def model_summary(spec: ModelSpec, catalog: Catalog, model_id: str | None = None) -> dict[str, Any]:
    """`dsdeploy model --json`: parameter counts, KV bytes per token and FLOPs, from the spec."""
    kv = {k: _num(spec.kv_bytes_per_token(d.bytes_per_element.value)) for k, d in catalog.kv_dtypes.items()}
    arch = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in ("gguf_component_bytes",)}
    arch["is_moe"] = spec.is_moe
    arch["moe_layers"] = spec.moe_layers
    arch["kv_elements_per_token"] = spec.kv_elements_per_token
    out: dict[str, Any] = {
        "name": spec.name,
        "params_total": int(spec.params_total),
        "params_active": int(spec.params_active),
        "params_matmul_active": int(spec.params_matmul_active),
        "mtp_params": int(spec.mtp_params()),
        "kv_bytes_per_token": kv,
        "params_by_component": {k: int(v) for k, v in spec.params_by_component().items()},
        "active_by_component": {k: int(v) for k, v in spec.active_by_component().items()},
        "flops_per_token_decode": {str(c): float(spec.flops_per_token_decode(c)) for c in FLOP_CONTEXTS},
        "flops_prefill": {str(c): float(spec.flops_prefill(c)) for c in FLOP_CONTEXTS if c},
        "architecture": arch,
    }
    if spec.gguf_component_bytes is not None:
        out["gguf_component_bytes"] = dict(spec.gguf_component_bytes)
        out["gguf_bytes_total"] = int(sum(spec.gguf_component_bytes.values()))
    if model_id and model_id in catalog.models:
        entry = catalog.models[model_id]
        out["published"] = {
            "params_total_b": entry.published_params_total_b.value,
            "params_active_b": entry.published_params_active_b.value,
            "source_total": entry.published_params_total_b.source,
            "source_active": entry.published_params_active_b.source,
            "native_weights": entry.native_weights,
            "max_context": int(entry.max_context.value),
        }
    return out
