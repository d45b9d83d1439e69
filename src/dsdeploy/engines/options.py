"""Plan options shared by `dsdeploy deploy` and `dsdeploy doctor` (the same names as `dsdeploy plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsdeploy.catalog import load_catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import MemoryPlan, Workload, plan_memory
from dsdeploy.specs.deployment import Deployment, resolve_deployment


@dataclass
class PlanOptions:
    model: str = "deepseek-r1"
    weights: str | None = None
    kv_dtype: str = "bf16"
    accelerator: str | None = None
    count: int | None = None  # None: one 8-GPU node for datacenter GPUs, else 1 (planner.options)
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
    from dsdeploy.planner.options import default_count, default_weights, resolve_model

    cat = load_catalog(home)
    model_id, spec = resolve_model(o.model, None)
    native = cat.models[model_id].native_weights if model_id in cat.models else None
    if o.weights is None and native is None and spec.gguf_file_type is None:
        raise UserError("--weights is required for a model given by path (e.g. --weights gguf-q4_k_m)")
    # deploy what the checkpoint is: its native format (or a GGUF's own type) unless told otherwise
    weights = default_weights(spec, o.weights, fallback=native or "bf16")
    if o.input_len < 0 or o.output_len < 0 or o.concurrency < 1:
        raise UserError("--input-len and --output-len must be ≥ 0 and --concurrency ≥ 1")
    dep = resolve_deployment(
        cat,
        model_id,
        spec,
        weights=weights,
        kv_dtype=o.kv_dtype,
        accelerator=o.accelerator,
        count=default_count(cat, o.accelerator, o.count),
        nodes=o.nodes,
        engine=o.engine,
        placement=o.placement,
        tp=o.tp,
        pp=o.pp,
        ep=o.ep,
        dp_attention=o.dp_attention,
        cpu=o.cpu,
        cpu_sockets=o.cpu_sockets,
        dram=o.dram,
        dram_gb=o.dram_gb,
        mtp=o.mtp,
    )
    wl = Workload(o.input_len, o.output_len, o.concurrency)
    return dep, plan_memory(dep, wl), wl


_INT_FIELDS = {
    "count",
    "nodes",
    "tp",
    "pp",
    "ep",
    "dp_attention",
    "cpu_sockets",
    "input_len",
    "output_len",
    "concurrency",
}


def from_plan_json(path: str | Path) -> PlanOptions:
    """Plan options from a JSON file: PlanOptions' own keys (a hand-written file), and/or a
    `dsdeploy plan --json` document, read with the same helpers `dsdeploy bench --plan` uses
    (hardware, parallelism and workload sit in nested sections there). A value of the wrong type
    is a UserError."""
    from dsdeploy.bench.record import deployment_from_plan, load_plan, workload_from_plan

    p = Path(path)
    raw = load_plan(p)
    fields = PlanOptions.__dataclass_fields__
    kw = {k: v for k, v in raw.items() if k in fields and v is not None and not isinstance(v, (dict, list))}
    for k, v in deployment_from_plan(raw).items():
        kw.setdefault({"accelerators_per_node": "count"}.get(k, k), v)
    hw = h if isinstance(h := raw.get("hardware"), dict) else {}
    if hw.get("dram_gb") is not None:
        kw.setdefault("dram_gb", hw["dram_gb"])
    for k, v in workload_from_plan(raw).items():
        kw.setdefault(k, v)
    for k, v in kw.items():
        if k in _INT_FIELDS:
            ok, kind = isinstance(v, int) and not isinstance(v, bool), "an integer"
        elif k == "dram_gb":
            ok, kind = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
        elif k == "mtp":
            ok, kind = isinstance(v, (bool, int)), "true or false"
        else:
            ok, kind = isinstance(v, str), "a string"
        if not ok:
            raise UserError(f"--plan {p}: '{k}' must be {kind}, got {v!r}")
    if "mtp" in kw:
        kw["mtp"] = bool(kw["mtp"])
    return PlanOptions(**kw)
