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
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dsdeploy.errors import UserError
from dsdeploy.planner.options import DeploymentOptions


@dataclass
class PlanInputs(DeploymentOptions):
    """`dsdeploy plan`'s options (single-deployment mode) with their one set of defaults
    (`planner.options.DeploymentOptions`), plus the calibration file the report predicts with."""

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


def plan_options(inp: PlanInputs) -> DeploymentOptions:
    """The planner's options for these inputs (the report and UI take `plan`'s options)."""
    kw = {f.name: getattr(inp, f.name) for f in fields(DeploymentOptions) if hasattr(inp, f.name)}
    return DeploymentOptions(**kw)


def build_plan(inp: PlanInputs) -> BuiltPlan:
    """`dsdeploy plan --json`'s dict for these options, from the function `plan` itself calls
    (`planner.answer.plan_evaluation`, through the one options → deployment path)."""
    from dsdeploy.planner.answer import checked_plan

    ev = checked_plan(plan_options(inp), str(inp.calibration) if inp.calibration else None)
    return BuiltPlan(inputs=inp, plan=ev.plan, deployment=ev.deployment, memory=ev.memory, workload=ev.workload)


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


def build_cost_view(
    inp: PlanInputs,
    currency: str = "USD",
    requests_per_day: float | None = None,
    tokens_per_day: float | None = None,
) -> dict[str, Any]:
    """The cost report (`dsdeploy cost --json` at the plan's options and the demand) and the
    cost-vs-demand series.

    The report is `cost`'s own (`planner.costing.run_cost`, utilization from the demand); the
    own-hardware line of the series is the same cost at each utilization in COST_UTILIZATIONS; the
    API and rent lines come from `planner.charts.cost_vs_demand`."""
    from dsdeploy.planner.bom import CostOptions
    from dsdeploy.planner.charts import cost_vs_demand
    from dsdeploy.planner.costing import build_cost, run_cost

    o = replace(plan_options(inp), output_len=max(inp.output_len, 1))
    base = run_cost(o, requests_per_day, tokens_per_day, currency=currency, calibration=inp.calibration)

    def at(u: float) -> dict[str, Any]:
        return build_cost(o, currency=currency, calibration=inp.calibration, opts=CostOptions(utilization=u))

    series: list[dict[str, Any]] = []
    cap = base.get("capacity_output_tokens_per_day") or 0
    if base["fits"] and cap > 0:
        reps = [at(u) for u in COST_UTILIZATIONS]
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


def _bench_number(v: Any, where: str) -> int | float | None:
    """A bench result's number as it is (finite int or float), or None when absent; a UserError otherwise."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise UserError(f"{where} must be a finite number, got {v!r}")
    return v


def _bench_mean(lv: dict[str, Any], key: str, where: str) -> float | None:
    stat = lv.get(key)
    if stat is None:
        return None
    if not isinstance(stat, dict):
        raise UserError(f"{where} field {key} must be an object with a 'mean', got {stat!r}")
    return _bench_number(stat.get("mean"), f"{where} field {key}.mean")


def bench_run(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The measured points of one bench result: one per level that completed requests. A level
    whose numbers are not finite numbers is one message naming the field."""
    points = []
    for i, lv in enumerate(doc["levels"]):
        if not isinstance(lv, dict) or not lv.get("completed"):
            continue
        where = f"{name}: level {i}"
        points.append(
            {
                "concurrency": _bench_number(lv.get("concurrency"), f"{where} field concurrency"),
                "request_rate": _bench_number(lv.get("request_rate"), f"{where} field request_rate"),
                "output_tok_s_total": _bench_number(lv.get("output_throughput"), f"{where} field output_throughput"),
                "tpot_ms": _bench_mean(lv, "tpot_ms", where),
                "ttft_ms": _bench_mean(lv, "ttft_ms", where),
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
    cost: tuple[float | None, float | None] | None = None,
    currency: str = "USD",
    slo: dict[str, float | None] | None = None,
    model_path: str | None = None,
    finetune: dict[str, Any] | None = None,
) -> tuple[BuiltPlan, dict[str, Any]]:
    """The plan and the template context of the report / UI for these options (one function for both).
    `finetune`: `dsdeploy finetune --json`'s document, drawn as the training memory stack."""
    from dsdeploy.reports.html import context

    built = build_plan(inp)
    ctx = context(
        built.plan,
        inputs=inp.to_dict(),
        plan_argv=inp.plan_argv(),
        launch=launch_command(built, model_path),
        bench_runs=bench_runs,
        cost=build_cost_view(inp, currency, *cost) if cost is not None else None,
        slo=slo,
        finetune=finetune,
    )
    return built, ctx


def bench_report(doc: dict[str, Any], plan: dict[str, Any] | None, name: str, slo: dict[str, float | None]) -> str:
    """`dsdeploy bench --report`'s page: the run's measured points, over the plan's prediction when
    `--plan plan.json` was given (the plan file is `plan --json`'s dict, shown as is)."""
    from dsdeploy.reports.html import context, render_report

    ctx = context(plan, bench_runs=[bench_run(doc, name)], slo=slo)
    return render_report(ctx, title=f"dsdeploy bench: {doc.get('model')} at {doc.get('endpoint')}")
