"""What the HTML report and the local UI show, gathered from the planner: the plan dict (exactly what
`dsdeploy plan --json` prints for the same options), the launch command, the cost report and bench
results. An edge: it calls the planner, cost and engine layers and reads files; no arithmetic.

`PlanInputs` holds `dsdeploy plan`'s options with `plan`'s defaults. `build_plan` takes the same
steps as `cli/cmd_plan.py` (resolve the model and format, the deployment, evaluate, alternatives,
`planner.result.plan_result`); `tests/test_report_html.py` checks that it gives `plan --json`'s
dict byte for byte, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dsdeploy.errors import UserError


@dataclass
class PlanInputs:
    """`dsdeploy plan`'s options (single-deployment mode), with its defaults."""

    model: str | None = None
    config: Path | None = None
    weights: str | None = None
    kv_dtype: str = "bf16"
    accelerator: str | None = None
    count: int | None = None
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
    mtp: bool = False
    input_len: int = 1024
    output_len: int = 1024
    concurrency: int = 1
    calibration: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

    def plan_argv(self) -> list[str]:
        """The `dsdeploy plan` flags that reproduce these inputs (for the report's "inputs" and tests)."""
        out: list[str] = []
        defaults = PlanInputs()
        for f in fields(self):
            v, d = getattr(self, f.name), getattr(defaults, f.name)
            if v == d:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(v, bool):
                out.append(flag if v else "--no-" + flag[2:])
            else:
                out += [flag, str(v)]
        return out


@dataclass
class BuiltPlan:
    """The plan dict plus the objects behind it (for the launch command and the cost report)."""

    inputs: PlanInputs
    plan: dict[str, Any]
    deployment: Any = None
    memory: Any = None
    workload: Any = None
    notes: list[str] = field(default_factory=list)


def build_plan(inp: PlanInputs) -> BuiltPlan:
    """`dsdeploy plan --json`'s dict for these options (the same steps as cli/cmd_plan.py)."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.estimators.memory import Workload
    from dsdeploy.planner import plan as planner
    from dsdeploy.planner import result as R
    from dsdeploy.planner.options import DEFAULT_ACCELERATOR, default_count, default_weights, resolve_model
    from dsdeploy.specs.deployment import resolve_deployment

    for name, v, lo in (
        ("--input-len", inp.input_len, 0),
        ("--output-len", inp.output_len, 0),
        ("--concurrency", inp.concurrency, 1),
        ("--nodes", inp.nodes, 1),
        ("--cpu-sockets", inp.cpu_sockets, 1),
    ):
        if v < lo:
            raise UserError(f"{name} must be ≥ {lo}, got {v}")
    if inp.count is not None and inp.count < 1:
        raise UserError(f"--count must be ≥ 1, got {inp.count}")
    if inp.input_len + inp.output_len < 1:
        raise UserError("--input-len + --output-len must be at least 1 token")

    cat = load_catalog()
    model_id, spec = resolve_model(inp.model, inp.config)
    w = default_weights(spec, inp.weights)
    cat.format(w)
    cat.kv_dtype(inp.kv_dtype)
    wl = Workload(input_len=inp.input_len, output_len=inp.output_len, concurrency=inp.concurrency)
    engine = inp.engine
    if engine is None and spec.gguf_component_bytes is not None:
        engine = "llama.cpp"
    acc = inp.accelerator if inp.accelerator is not None else (None if inp.placement == "cpu" else DEFAULT_ACCELERATOR)
    if acc is not None and acc.lower() == "none":
        acc = None
    if acc is not None:
        acc = cat.accelerator(acc).id
    n = default_count(cat, acc, inp.count)
    cal = R.load_calibration(str(inp.calibration) if inp.calibration else None)
    dep = resolve_deployment(
        cat,
        model_id,
        spec,
        w,
        kv_dtype=inp.kv_dtype,
        accelerator=acc,
        count=n,
        nodes=inp.nodes,
        engine=engine,
        placement=inp.placement,
        tp=inp.tp,
        pp=inp.pp,
        ep=inp.ep,
        dp_attention=inp.dp_attention,
        cpu=inp.cpu,
        cpu_sockets=inp.cpu_sockets,
        dram=inp.dram,
        dram_gb=inp.dram_gb,
        mtp=inp.mtp,
    )
    ev = planner.evaluate(dep, wl)
    alts = planner.alternatives(cat, dep, wl)
    res = R.plan_result(cat, ev, wl, alts, calibration=cal)
    return BuiltPlan(inputs=inp, plan=res, deployment=dep, memory=ev.memory, workload=wl)


def launch_command(built: BuiltPlan, model_path: str | None = None) -> dict[str, Any]:
    """`dsdeploy deploy --emit command`'s script for the plan: {"ok", "text"}; when the plan does not
    fit or the engine has no adapter, ok is False and text says why."""
    from dsdeploy.engines import DeployOptions, render

    if not built.plan["fits"]:
        return {"ok": False, "text": f"No launch command: {built.plan['reason']}."}
    path = model_path or f"/models/{built.plan['model']}"
    try:
        text = render(built.deployment, built.memory, built.workload, DeployOptions(model_path=path), "command")
    except UserError as exc:
        return {"ok": False, "text": f"No launch command: {exc}"}
    return {"ok": True, "text": text, "model_path": path}


COST_UTILIZATIONS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def build_cost_view(inp: PlanInputs, currency: str = "USD") -> dict[str, Any]:
    """The cost report (`dsdeploy cost --json` at the plan's options) and the cost-vs-demand series.

    The own-hardware line comes from `cost` itself at each utilization in COST_UTILIZATIONS; the
    API and rent lines from `planner.charts.cost_vs_demand`."""
    from dsdeploy.planner.bom import CostOptions
    from dsdeploy.planner.charts import cost_vs_demand
    from dsdeploy.planner.costing import build_cost

    kw: dict[str, Any] = dict(
        model=inp.model,
        weights=inp.weights,
        kv_dtype=inp.kv_dtype,
        accelerator=inp.accelerator,
        count=inp.count,
        nodes=inp.nodes,
        engine=inp.engine,
        placement=inp.placement,
        cpu=inp.cpu,
        cpu_sockets=inp.cpu_sockets,
        dram=inp.dram,
        dram_gb=inp.dram_gb,
        input_len=inp.input_len,
        output_len=max(inp.output_len, 1),
        concurrency=inp.concurrency,
        currency=currency,
        calibration=inp.calibration,
    )
    base = build_cost(**kw)
    series: list[dict[str, Any]] = []
    cap = base.get("capacity_output_tokens_per_day") or 0
    if base["fits"] and cap > 0:
        reps = [build_cost(**kw, opts=CostOptions(utilization=u)) for u in COST_UTILIZATIONS]
        be = base.get("breakeven_tokens_per_day")
        hi = cap if be is None else max(cap, min(be, cap * 20))
        demands = [cap * u for u in COST_UTILIZATIONS if cap * u <= hi]
        demands += [hi * f for f in (0.25, 0.5, 0.75, 1.0) if hi * f > cap]
        series = cost_vs_demand(reps, sorted(set(demands)))
    return {"report": base, "demand": series}


def load_bench(path: Path) -> dict[str, Any]:
    """A `dsdeploy bench --json` file: {"name", "levels", ...}; a bad file is a UserError."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"bench file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read bench file {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("levels"), list):
        raise UserError(f"{path} is not a `dsdeploy bench --json` result (no 'levels' list)")
    return bench_run(doc, Path(path).name)


def bench_run(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The measured points of one bench result: one per level that completed requests."""
    points = []
    for lv in doc["levels"]:
        if not isinstance(lv, dict) or not lv.get("completed"):
            continue
        tpot, ttft = (lv.get("tpot_ms") or {}).get("mean"), (lv.get("ttft_ms") or {}).get("mean")
        points.append(
            {
                "concurrency": lv.get("concurrency"),
                "request_rate": lv.get("request_rate"),
                "output_tok_s_total": lv.get("output_throughput"),
                "tpot_ms": tpot,
                "ttft_ms": ttft,
                "completed": lv.get("completed"),
                "errors": lv.get("errors", 0),
            }
        )
    return {
        "name": name,
        "endpoint": doc.get("endpoint"),
        "model": doc.get("model"),
        "input_len": doc.get("input_len"),
        "output_len": doc.get("output_len"),
        "points": points,
    }


def gather(
    inp: PlanInputs,
    *,
    bench_runs: list[dict[str, Any]] | None = None,
    cost: bool = False,
    currency: str = "USD",
    slo: dict[str, float | None] | None = None,
    model_path: str | None = None,
) -> tuple[BuiltPlan, dict[str, Any]]:
    """The plan and the template context of the report / UI for these options (one function for both)."""
    from dsdeploy.reports.html import context

    built = build_plan(inp)
    ctx = context(
        built.plan,
        inputs=inp.to_dict(),
        plan_argv=inp.plan_argv(),
        launch=launch_command(built, model_path),
        bench_runs=bench_runs,
        cost=build_cost_view(inp, currency) if cost else None,
        slo=slo,
    )
    return built, ctx


def bench_report(doc: dict[str, Any], plan: dict[str, Any] | None, name: str, slo: dict[str, float | None]) -> str:
    """`dsdeploy bench --report`'s page: the run's measured points, over the plan's prediction when
    `--plan plan.json` was given (the plan file is `plan --json`'s dict, shown as is)."""
    from dsdeploy.reports.html import context, render_report

    ctx = context(plan, bench_runs=[bench_run(doc, name)], slo=slo)
    return render_report(ctx, title=f"dsdeploy bench: {doc.get('model')} at {doc.get('endpoint')}")
