"""Fit the step model's efficiency factors: per hardware family, then per (engine, hardware class).

Two levels, so that a deployment type we have never measured still gets a measured prior:
1. a **family** fit (`engine = "*"`, hw_class = gpu | hybrid | cpu | unified) on every row of that
   family: what engines of that era achieve on that kind of hardware;
2. a **group** fit per (engine, hardware class) with ≥ 2 rows, shrunk toward its family fit:
   loss = Σ soft-L1(log(pred/measured)) + λ Σ (log(param/family param) / log 3)².

Robust loss: soft-L1 (√(1+r²/s²)−1, s = 0.3) on the log error, so a 2× miss counts the same either
way and one odd row cannot drag a group. Parameters are searched on a log grid, then refined.
`Calibration.lookup` uses the group if there is one, else the engine family's, else the hardware
family's fit, else the roofline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dsdeploy.catalog import Catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators.calibration import Calibration, GroupParams, class_family
from dsdeploy.estimators.memory import Workload
from dsdeploy.specs.deployment import Deployment
from dsdeploy.validate.scenarios import Row, evaluate_rows, predict_metric, row_deployment, summarize

SOFT_SCALE = 0.3
SHRINK = 0.5  # λ: weight of the pull toward the family fit, per parameter, at a 3× deviation
MIN_ROWS = 2
GRIDS = {
    "bw_eff": tuple(np.geomspace(0.05, 1.0, 10)),
    "compute_eff": tuple(np.geomspace(0.002, 0.9, 12)),
    "prefill_compute_eff": tuple(np.geomspace(0.002, 0.9, 12)),
    "layer_overhead_us": (0.0, 5.0, 15.0, 40.0, 100.0, 250.0, 600.0, 1500.0),
}
START = {"bw_eff": 0.5, "compute_eff": 0.05, "prefill_compute_eff": 0.05, "layer_overhead_us": 40.0}
# A weak physical prior breaks the degeneracy a handful of rows leave (slow because compute-bound,
# or because bandwidth-bound?): decode GEMMs at batch reach tens of percent of peak (MAMF 51–87 %
# for large GEMMs, facts.md §1b); HBM streaming reaches 60–80 % (aiconfigurator's 0.8, §1f); a
# layer launches ~10 kernels at a few µs each.
PHYSICAL = GroupParams("*", "*", bw_eff=0.6, compute_eff=0.3, layer_overhead_us=30.0, prefill_compute_eff=0.3)
PHYSICAL_WEIGHT = 0.1


@dataclass
class Prepared:
    row: Row
    dep: Deployment
    wl: Workload
    metric: str
    measured: float
    group: tuple[str, str]


def prepare(cat: Catalog, rows: list[Row]) -> list[Prepared]:
    """Resolve each predictable row once (deployments do not depend on the calibration)."""
    from dsdeploy.estimators.performance import hw_class

    out = []
    for r in rows:
        try:
            measured = float(r.get("value"))
            dep, wl, _ = row_deployment(cat, r)
        except (UserError, ValueError):
            continue
        if not math.isfinite(measured) or measured <= 0:
            continue
        out.append(Prepared(r, dep, wl, r.get("metric"), measured, (dep.engine.id, hw_class(dep))))
    return out


def _row_loss(p: Prepared, cal: Calibration) -> float:
    try:
        pred = predict_metric(p.dep, p.wl, p.metric, p.row, cal)
    except (UserError, ZeroDivisionError, ValueError):
        return 10.0
    if not pred or pred <= 0 or not math.isfinite(pred):
        return 10.0
    e = math.log(pred / p.measured) / SOFT_SCALE
    return math.sqrt(1 + e * e) - 1


def _penalty(params: dict, prior: GroupParams | None) -> float:
    if prior is None:
        return PHYSICAL_WEIGHT / SHRINK * _penalty(params, PHYSICAL)
    l3 = math.log(3)
    pri = {"bw_eff": prior.bw_eff, "compute_eff": prior.compute_eff, "prefill_compute_eff": prior.prefill_eff}
    pen = sum((math.log(params[k] / v) / l3) ** 2 for k, v in pri.items())
    pen += (math.log((params["layer_overhead_us"] + 20) / (prior.layer_overhead_us + 20)) / l3) ** 2
    out = SHRINK * pen
    if prior is not PHYSICAL:
        out += PHYSICAL_WEIGHT / SHRINK * _penalty(params, PHYSICAL)
    return out


def _fit(
    items: list[Prepared], engine: str, hwc: str, others: tuple[GroupParams, ...], prior: GroupParams | None
) -> GroupParams:
    """Coordinate descent: line-search each parameter on its grid in turn, from the prior, then
    refine multiplicatively; stops when a full sweep no longer improves the loss."""

    def group(ps: dict) -> GroupParams:
        return GroupParams(
            engine,
            hwc,
            ps["bw_eff"],
            ps["compute_eff"],
            ps["layer_overhead_us"],
            prefill_compute_eff=ps["prefill_compute_eff"],
            rows=len(items),
        )

    def loss(ps: dict) -> float:
        cal = Calibration(groups=others + (group(ps),))
        return sum(_row_loss(p, cal) for p in items) + _penalty(ps, prior)

    cur = dict(START)
    if prior is not None:
        cur = {
            "bw_eff": prior.bw_eff,
            "compute_eff": prior.compute_eff,
            "prefill_compute_eff": prior.prefill_eff,
            "layer_overhead_us": prior.layer_overhead_us,
        }
    best = loss(cur)
    for _ in range(4):
        improved = False
        for k, grid in GRIDS.items():
            for v in grid:
                trial = {**cur, k: float(v)}
                val = loss(trial)
                if val < best - 1e-9:
                    best, cur, improved = val, trial, True
        if not improved:
            break
    for step in (1.3, 1.12):
        for k in GRIDS:
            for f in (1 / step, step):
                v = cur[k] * f if cur[k] > 0 else (3.0 if f > 1 else 0.0)
                if k != "layer_overhead_us":
                    v = min(1.0, v)
                trial = {**cur, k: v}
                val = loss(trial)
                if val < best - 1e-9:
                    best, cur = val, trial
    return group({k: float(v) for k, v in cur.items()})


def _band(items: list[Prepared], cal: Calibration) -> float:
    """Relative band covering 80 % of these rows: exp(p80 |log error|) − 1."""
    errs = []
    for p in items:
        try:
            pred = predict_metric(p.dep, p.wl, p.metric, p.row, cal)
            errs.append(abs(math.log(pred / p.measured)))
        except Exception:  # noqa: BLE001 — a row that cannot be predicted adds no band
            continue
    if not errs:
        return cal.default_band
    errs.sort()
    return float(math.exp(errs[min(len(errs) - 1, math.ceil(0.8 * len(errs)) - 1)]) - 1)


def calibrate(cat: Catalog, rows: list[Row], fitted_on: str = "", fill_rows: list[Row] | None = None) -> Calibration:
    """Fit family priors and (engine, hardware class) groups on `rows`. Groups that `rows` do not
    cover may be filled from `fill_rows` (e.g. `major` rows whose workload was defaulted)."""
    items = prepare(cat, rows)
    fill = prepare(cat, fill_rows) if fill_rows else []
    fitted: list[GroupParams] = []
    families: dict[str, GroupParams] = {}
    glob = None
    if len(items) >= MIN_ROWS:
        glob = replace(_fit(items, "*", "*", (), None), source=f"{fitted_on}: global fit")
        fitted.append(glob)
    for fam in sorted({class_family(p.group[1]) for p in items}):
        members = [p for p in items if class_family(p.group[1]) == fam]
        if len(members) >= MIN_ROWS:
            g = _fit(members, "*", fam, tuple(fitted), glob)
            families[fam] = replace(g, source=f"{fitted_on}: family fit")
    fitted.extend(families.values())
    groups: dict[tuple[str, str], list[Prepared]] = {}
    for p in items:
        groups.setdefault(p.group, []).append(p)
    filled: set[tuple[str, str]] = set()
    for p in fill:
        if p.group not in groups or len(groups[p.group]) < MIN_ROWS:
            groups.setdefault(p.group, []).append(p)
            filled.add(p.group)
    for key, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(members) < MIN_ROWS:
            continue
        prior = families.get(class_family(key[1]))
        g = _fit(members, key[0], key[1], tuple(fitted), prior)
        src = fitted_on + (" (filled from lower-confidence rows)" if key in filled else "")
        fitted.append(replace(g, source=src))
    cal = Calibration(groups=tuple(fitted), fitted_on=fitted_on, default_band=1.0)
    banded = []
    for g in cal.groups:
        if g.engine == "*" and g.hw_class == "*":
            members = items
        elif g.engine == "*":
            members = [p for p in items if class_family(p.group[1]) == g.hw_class]
        else:
            members = groups[(g.engine, g.hw_class)]
        b = _band(members, cal)
        if "filled" in g.source and b > 1.0:
            continue  # a fill-in fit that still misses by > 2× teaches nothing; borrow instead
        banded.append(replace(g, band=max(0.15, b)))
    return Calibration(
        groups=tuple(banded),
        fitted_on=fitted_on,
        default_band=1.0,
        meta={
            "rows": len(items),
            "method": "family priors + per-(engine, hardware class) fits shrunk toward them; soft-L1 on log error",
        },
    )


def leave_one_source_out(cat: Catalog, rows: list[Row]) -> tuple[list, dict]:
    """Fit without each source's rows, predict those rows: the honest estimate on unseen sources."""
    sources = sorted({r.source_key for r in rows})
    all_res = []
    for s in sources:
        train = [r for r in rows if r.source_key != s]
        test = [r for r in rows if r.source_key == s]
        cal = calibrate(cat, train, fitted_on=f"all but {s}")
        all_res.extend(evaluate_rows(cat, test, cal))
    return all_res, summarize(all_res)
