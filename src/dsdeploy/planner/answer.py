"""`dsdeploy plan`'s answer for a set of options: the plan itself or one of its two searches. One
function, shared by `plan`, `report` and `ui`; the deployment comes from the one options →
deployment path (`planner.options.build`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsdeploy.catalog import Catalog
from dsdeploy.estimators.calibration import Calibration
from dsdeploy.estimators.memory import MemoryPlan, Workload
from dsdeploy.planner.options import DeploymentOptions
from dsdeploy.specs.deployment import Deployment
from dsdeploy.specs.model import ModelSpec


@dataclass
class PlanEvaluation:
    """The plan JSON (`plan --json`) and the objects it was computed from."""

    plan: dict[str, Any]
    deployment: Deployment
    memory: MemoryPlan
    workload: Workload


def plan_evaluation(
    o: DeploymentOptions,
    calibration: Calibration | None = None,
    catalog: Catalog | None = None,
    model: tuple[str, ModelSpec] | None = None,
) -> PlanEvaluation:
    """The single-deployment plan for options `o`: evaluate, alternatives, the plan JSON."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.planner import plan as planner
    from dsdeploy.planner import result as R
    from dsdeploy.planner.options import build, workload

    cat = catalog or load_catalog()
    wl = workload(o)
    dep = build(o, cat, model)
    ev = planner.evaluate(dep, wl)
    res = R.plan_result(cat, ev, wl, planner.alternatives(cat, dep, wl), calibration=calibration)
    return PlanEvaluation(plan=res, deployment=dep, memory=ev.memory, workload=wl)


def _checked(o: DeploymentOptions) -> tuple[Catalog, Workload, str, ModelSpec, str]:
    """catalog, workload, model id and spec, weight format id: each option checked the way `plan`
    checks it (an unknown id is one message with close matches)."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.planner.options import default_weights, resolve_model, workload

    cat = load_catalog()
    wl = workload(o)
    model_id, spec = resolve_model(o.model, o.config, cat)
    w = default_weights(spec, o.weights, cat)
    cat.format(w)
    cat.kv_dtype(o.kv_dtype)
    return cat, wl, model_id, spec, w


def checked_plan(o: DeploymentOptions, calibration: str | None = None) -> PlanEvaluation:
    """`plan_evaluation` after `plan`'s input checks, with the calibration file (None = shipped)."""
    from dsdeploy.planner import result as R

    cat, _wl, model_id, spec, _w = _checked(o)
    return plan_evaluation(o, R.load_calibration(calibration), cat, (model_id, spec))


def plan_answer(
    o: DeploymentOptions,
    mode: str = "plan",
    calibration: str | None = None,
    slo: tuple[float | None, float | None] = (None, None),
) -> dict:
    """The plan JSON for options `o`: the plan itself, or one of its searches (min-count, best-format,
    best-model; `slo` = (TTFT ms, TPOT ms) for best-model)."""
    from dsdeploy.planner import result as R
    from dsdeploy.planner.options import default_accelerator, default_count

    if mode == "plan":
        return checked_plan(o, calibration).plan
    cat, wl, model_id, spec, w = _checked(o)
    if mode == "min-count":
        return R.min_count_result(cat, model_id, spec, w, o.kv_dtype, wl)
    cal = R.load_calibration(calibration)
    acc = default_accelerator(cat, o.accelerator, o.placement)
    hw = dict(
        accelerator=acc,
        count=default_count(cat, acc, o.count),
        nodes=o.nodes,
        placement=o.placement,
        cpu=o.cpu,
        cpu_sockets=o.cpu_sockets,
        dram=o.dram,
        dram_gb=o.dram_gb,
    )
    if mode == "best-model":
        return R.best_model_result(cat, wl, o.kv_dtype, calibration=cal, ttft_ms=slo[0], tpot_ms=slo[1], **hw)
    return R.best_format_result(cat, model_id, spec, wl, o.kv_dtype, calibration=cal, **hw)
