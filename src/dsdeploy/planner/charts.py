"""Derived series for the report's charts: the knee of the latency–throughput curve and the cost of
serving a demand three ways (own hardware, the API, rented GPUs). Pure functions over the plan and
cost dicts (`planner.result.plan_result`, `planner.bom.cost_report`); the HTML edge only draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DAYS_PER_YEAR = 365.0  # as estimators.cost.breakeven_output_tokens_per_day


def knee_index(xs: Sequence[float], ys: Sequence[float]) -> int | None:
    """Index of the knee of an increasing, concave curve y(x), or None when there is none.

    Kneedle (Satopää, Albrecht, Irwin, Raghavan, "Finding a 'Kneedle' in a Haystack", ICDCS
    workshops 2011, https://raghavan.usc.edu/papers/kneedle-simplex11.pdf): scale x and y to [0, 1],
    the knee is the point furthest above the diagonal, i.e. argmax(y_n − x_n). For the serving
    curve, x = latency (TPOT), y = total output throughput: past the knee, more concurrency buys
    little throughput for much more latency. Needs ≥ 3 points with distinct x and y ranges."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 <= x0 or y1 <= y0:
        return None
    diffs = [(y - y0) / (y1 - y0) - (x - x0) / (x1 - x0) for x, y in zip(xs, ys, strict=True)]
    best = max(range(len(diffs)), key=lambda i: (diffs[i], -i))
    return best if diffs[best] > 0 else None


def band_bounds(value: float, band: float) -> tuple[float, float]:
    """(low, high) of a prediction with relative half-width `band` (PerfPrediction.band: ±band)."""
    return value * (1.0 - band), value * (1.0 + band)


def cost_vs_demand(reports: Sequence[dict[str, Any]], demands: Sequence[float]) -> list[dict[str, Any]]:
    """Annual cost of serving each demand (output tokens/day) three ways, from cost reports.

    `reports` are `cost_report` dicts of one deployment at increasing utilization; each gives one
    own-hardware point: demand = utilization × capacity_output_tokens_per_day, cost = annual.total
    (depreciation + staff + maintenance + energy at that utilization). The API line is
    demand × 365 × api_cost_per_mtok_output / 10⁶ (the API's price for this workload's tokens,
    prompts included), the rent line rent_annual (the same GPUs on demand 24/7 plus the same staff),
    at each of `demands`. The own-hardware line stops at the hardware's capacity."""
    if not reports:
        return []
    api_per_mtok = reports[0]["api_cost_per_mtok_output"]
    rent = reports[0].get("rent_annual")
    out: list[dict[str, Any]] = []
    for rep in reports:
        cap = rep.get("capacity_output_tokens_per_day") or 0
        out.append(
            {
                "series": "own",
                "tokens_per_day": rep["utilization"] * cap,
                "annual_cost": rep["annual"]["total"],
                "utilization": rep["utilization"],
            }
        )
    for d in demands:
        out.append({"series": "api", "tokens_per_day": d, "annual_cost": d * DAYS_PER_YEAR * api_per_mtok / 1e6})
        if rent is not None:
            out.append({"series": "rent", "tokens_per_day": d, "annual_cost": rent})
    return out
