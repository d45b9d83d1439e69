"""Fit the step model's efficiency factors per (engine, hardware class) group.

Robust fit: minimise Σ soft-L1(log(pred/measured)) — the log makes a 2× miss the same size either
way; soft-L1 (√(1+r²/s²)−1) keeps one odd row from dragging the group. Three parameters per group,
searched on a log grid, then refined around the best point. Groups with fewer than 2 rows are not
fitted (they borrow, see `Calibration.lookup`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np

from dsdeploy.catalog import Catalog
from dsdeploy.estimators.calibration import Calibration, GroupParams
from dsdeploy.validate.scenarios import Row, evaluate_rows, summarize

SOFT_SCALE = 0.3  # log-error scale where the loss turns linear (≈35 %)
MIN_ROWS = 2


def _loss(cat: Catalog, rows: list[Row], cal: Calibration) -> float:
    res = evaluate_rows(cat, rows, cal)
    tot = 0.0
    for r in res:
        if r.predicted is None or r.predicted <= 0:
            tot += 10.0
            continue
        e = math.log(r.predicted / r.measured) / SOFT_SCALE
        tot += math.sqrt(1 + e * e) - 1
    return tot


def _fit_group(cat: Catalog, rows: list[Row], engine: str, hwc: str, others: tuple[GroupParams, ...]) -> GroupParams:
    def cal_with(bw, ce, ov):
        g = GroupParams(engine, hwc, bw, ce, ov, rows=len(rows))
        return Calibration(groups=others + (g,))

    bw_grid = np.geomspace(0.05, 1.0, 7)
    ce_grid = np.geomspace(0.003, 0.9, 8)
    ov_grid = [0.0, 10.0, 40.0, 120.0, 350.0, 1000.0]
    best = (float("inf"), None)
    for bw, ce, ov in itertools.product(bw_grid, ce_grid, ov_grid):
        l = _loss(cat, rows, cal_with(bw, ce, ov))
        if l < best[0]:
            best = (l, (bw, ce, ov))
    bw0, ce0, ov0 = best[1]
    for step in (1.6, 1.25):
        for fb, fc, fo in itertools.product((1 / step, 1, step), repeat=3):
            bw, ce = min(1.0, bw0 * fb), min(1.0, ce0 * fc)
            ov = ov0 * fo if ov0 > 0 else (5.0 if fo > 1 else 0.0)
            l = _loss(cat, rows, cal_with(bw, ce, ov))
            if l < best[0]:
                best = (l, (bw, ce, ov))
        bw0, ce0, ov0 = best[1]
    return GroupParams(engine, hwc, float(bw0), float(ce0), float(ov0), rows=len(rows))


def group_rows(cat: Catalog, rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    res = evaluate_rows(cat, rows, Calibration())
    groups: dict[tuple[str, str], list[Row]] = {}
    by_id = {r.id: r for r in rows}
    for r in res:
        if r.predicted is None or not r.group:
            continue
        eng, hwc = r.group.split("/", 1)
        groups.setdefault((eng, hwc), []).append(by_id[r.id])
    return groups


def _band(cat: Catalog, rows: list[Row], cal: Calibration) -> float:
    """Relative band covering 80 % of this group's rows (|pred/meas − 1| at p80)."""
    res = [r for r in evaluate_rows(cat, rows, cal) if r.ape is not None]
    if not res:
        return cal.default_band
    errs = sorted(abs(math.log(r.predicted / r.measured)) for r in res)
    k = min(len(errs) - 1, int(math.ceil(0.8 * len(errs))) - 1)
    return float(math.exp(errs[k]) - 1)


def calibrate(cat: Catalog, rows: list[Row], fitted_on: str = "", fill_rows: list[Row] | None = None) -> Calibration:
    """Fit each (engine, hardware class) group on `rows`. Groups that `rows` do not cover may be
    filled from `fill_rows` (e.g. `major`-ambiguity rows, whose workload was defaulted): better a
    rough fit than none for an engine users run (llama.cpp on CPUs, Ollama)."""
    groups = group_rows(cat, rows)
    fitted: list[GroupParams] = []
    for (eng, hwc), grows in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(grows) < MIN_ROWS:
            continue
        g = _fit_group(cat, grows, eng, hwc, tuple(fitted))
        fitted.append(g)
    if fill_rows:
        have = {(g.engine, g.hw_class) for g in fitted}
        extra = group_rows(cat, fill_rows)
        for key, grows in sorted(extra.items()):
            if key in have:
                continue
            merged = groups.get(key, []) + grows
            if len(merged) < MIN_ROWS:
                continue
            g = _fit_group(cat, merged, key[0], key[1], tuple(fitted))
            fitted.append(replace(g, source=f"{fitted_on} (filled from lower-confidence rows)"))
            groups[key] = merged
    cal = Calibration(groups=tuple(fitted), fitted_on=fitted_on, default_band=1.0)
    # bands from each group's own residuals (in-sample; docs/accuracy.md reports cross-validation)
    banded = []
    for g in cal.groups:
        b = _band(cat, groups[(g.engine, g.hw_class)], cal)
        if "filled" in g.source and b > 1.0:
            continue  # a fill-in fit that still misses by >2× teaches nothing; borrow instead
        banded.append(replace(g, band=max(0.15, b), source=g.source or fitted_on))
    # the roofline band: how far roofline predictions were off on everything
    return Calibration(groups=tuple(banded), fitted_on=fitted_on, default_band=1.0,
                       meta={"rows": len(rows), "method": "soft-L1 on log error, grid search per (engine, hardware class)"})


def before_after(cat: Catalog, rows: list[Row], cal: Calibration) -> tuple[dict, dict]:
    return summarize(evaluate_rows(cat, rows, Calibration())), summarize(evaluate_rows(cat, rows, cal))


def leave_one_source_out(cat: Catalog, rows: list[Row]) -> tuple[list, dict]:
    """Fit without each source's rows, predict those rows: the honest estimate on unseen sources."""
    from dsdeploy.validate.scenarios import summarize as _sum

    sources = sorted({r.source_key for r in rows})
    all_res = []
    for s in sources:
        train = [r for r in rows if r.source_key != s]
        test = [r for r in rows if r.source_key == s]
        cal = calibrate(cat, train, fitted_on=f"all but {s}")
        all_res.extend(evaluate_rows(cat, test, cal))
    return all_res, _sum(all_res)
