"""Plan options shared by `dsdeploy deploy` and `dsdeploy doctor` (the same names as `dsdeploy plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsdeploy.catalog import load_catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import MemoryPlan, Workload, plan_memory
from dsdeploy.specs.deployment import Deployment, resolve_deployment
from dsdeploy.specs.model import load_model_spec


@dataclass
class PlanOptions:
    model: str = "deepseek-r1"
    weights: str | None = None
    kv_dtype: str = "bf16"
    accelerator: str | None = None
    count: int = 0
    nodes: int = 1
    engine: str | None = None
    placement: str | None = None
    tp: int | None = None
    pp: int | None = None
    ep: int | None = None
    dp_attention: int | None = None
    cpu: str | None = None
    cpu_sockets: int = 1
    dram: str | None = None
    dram_gb: float | None = None
    input_len: int = 1024
    output_len: int = 1024
    concurrency: int = 1
    mtp: bool = False


def resolve(o: PlanOptions, home: str | None = None) -> tuple[Deployment, MemoryPlan, Workload]:
    cat = load_catalog(home)
    spec = load_model_spec(o.model)
    model_id = spec.name
    weights = o.weights
    if weights is None:
        try:
            weights = cat.model(o.model).native_weights
        except UserError:
            raise UserError("--weights is required for a model given by path (e.g. --weights gguf-q4_k_m)") from None
    if o.input_len < 0 or o.output_len < 0 or o.concurrency < 1:
        raise UserError("--input-len and --output-len must be ≥ 0 and --concurrency ≥ 1")
    dep = resolve_deployment(
        cat, model_id, spec, weights=weights, kv_dtype=o.kv_dtype, accelerator=o.accelerator, count=o.count,
        nodes=o.nodes, engine=o.engine, placement=o.placement, tp=o.tp, pp=o.pp, ep=o.ep,
        dp_attention=o.dp_attention, cpu=o.cpu, cpu_sockets=o.cpu_sockets, dram=o.dram, dram_gb=o.dram_gb, mtp=o.mtp,
    )
    wl = Workload(o.input_len, o.output_len, o.concurrency)
    return dep, plan_memory(dep, wl), wl


def from_plan_json(path: str | Path) -> PlanOptions:
    """Plan options from a JSON file: either PlanOptions' own keys, or a `dsdeploy plan --json`
    result (its summary keys: weights, engine, placement, accelerator, accelerators_per_node, ...)."""
    import json

    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"--plan {p}: cannot read a JSON plan ({exc})") from None
    if isinstance(raw, dict) and "plan" in raw and isinstance(raw["plan"], dict):
        raw = {**raw, **raw["plan"]}
    if isinstance(raw, dict) and "deployment" in raw and isinstance(raw["deployment"], dict):
        raw = {**raw, **raw["deployment"]}
    if not isinstance(raw, dict):
        raise UserError(f"--plan {p}: expected a JSON object")
    alias = {"accelerators_per_node": "count", "context_tokens": None, "model_id": "model"}
    fields = PlanOptions.__dataclass_fields__
    kw = {}
    for k, v in raw.items():
        k2 = alias.get(k, k)
        if k2 in fields and v is not None:
            kw[k2] = v
    return PlanOptions(**kw)
