"""`dsdeploy cost`'s answer: the deployment from the one options → deployment path, its memory plan,
its speed (performance model or stated), the utilization the demand implies, and the cost report.

The utilization rule is `recommend`'s (`planner.demand.copies_and_utilization`), so both commands
give the same cost per million tokens for the same box and demand. A deployment that does not fit
gets no speed: its hardware is priced, its cost per token is not.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.prices import PriceBook
from dsdeploy.estimators.memory import plan_memory
from dsdeploy.planner.bom import CostOptions, cost_report, predict_throughput
from dsdeploy.planner.demand import Demand, copies_and_utilization
from dsdeploy.planner.options import DeploymentOptions, build, workload

NO_FIT_UTILIZATION = 1.0  # energy of a deployment that does not load: the upper bound, said in its note


def cost_answer(
    catalog: Catalog,
    o: DeploymentOptions,
    book: PriceBook,
    opts: CostOptions,
    demand: Demand | None = None,
    throughput: float | None = None,
    calibration=None,
) -> dict:
    """The cost report for options `o`. With `demand`, utilization = demand ÷ speed (recommend's
    rule); without one, `opts.utilization` (the documentation's fixed scenarios only)."""
    opts.validate()
    wl = workload(o)
    dep = build(o, catalog)
    mem = plan_memory(dep, wl)
    if not mem.fits:
        rep = cost_report(
            catalog, dep, wl, mem, book, replace(opts, utilization=NO_FIT_UTILIZATION), no_speed="does not fit"
        )
        rep["notes"].insert(
            0,
            f"this deployment does not run as given ({mem.reason}); it has no speed, so no cost per token, "
            f"utilization or break-even is priced (capex, and energy at {NO_FIT_UTILIZATION:.0%} busy, are shown)",
        )
        return rep
    perf = predict_throughput(dep, wl, calibration) if throughput is None else None
    if demand is None:
        return cost_report(catalog, dep, wl, mem, book, opts, throughput=throughput, perf=perf)
    box = throughput if throughput is not None else (perf.output_tok_s_total if perf is not None else 0.0)
    copies, util = copies_and_utilization(demand.avg_output_tok_s, box)
    rep = cost_report(catalog, dep, wl, mem, book, replace(opts, utilization=util), throughput=throughput, perf=perf)
    rep["demand"] = {
        "requests_per_day": round(demand.requests_per_day, 2),
        "output_tokens_per_day": round(demand.output_tokens_per_day),
        "avg_output_tok_s": round(demand.avg_output_tok_s, 3),
    }
    rep["copies"] = copies
    rep["labels"]["utilization"] = "derived: demand ÷ (copies × output tok/s), copies = ⌈demand ÷ (0.8 × tok/s)⌉"
    if copies > 1:
        rep["notes"].insert(
            0,
            f"the demand needs {copies} copies of this deployment (each ≤ 80 % busy); the figures are per copy, "
            "the cost per token is the same for all",
        )
    return rep


def build_cost(
    options: DeploymentOptions | None = None,
    demand: Demand | None = None,
    prices: Path | None = None,
    currency: str = "USD",
    fx_rate: float | None = None,
    throughput: float | None = None,
    calibration: Path | None = None,
    opts: CostOptions | None = None,
    **option_kw,
) -> dict:
    """`cost_answer` with the packaged catalogs: options as a DeploymentOptions or as its keywords."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.catalog.prices import load_prices
    from dsdeploy.planner.result import load_calibration

    o = options or DeploymentOptions(**option_kw)
    book = PriceBook.build(load_prices(prices), currency, fx_rate)
    cal = load_calibration(str(calibration)) if calibration is not None else None
    return cost_answer(load_catalog(), o, book, opts or CostOptions(), demand, throughput, cal)


def run_cost(
    o: DeploymentOptions,
    requests_per_day: float | None,
    tokens_per_day: float | None,
    opts: CostOptions | None = None,
    prices: Path | None = None,
    currency: str = "USD",
    fx_rate: float | None = None,
    throughput: float | None = None,
    calibration: Path | None = None,
) -> dict:
    """`dsdeploy cost`: the demand (as `recommend` builds it: planner.demand.Demand.build) and the
    cost report. `report --cost` calls it too."""

    demand = Demand.build(
        requests_per_day=requests_per_day,
        tokens_per_day=tokens_per_day,
        input_len=o.input_len,
        output_len=o.output_len,
        peak_concurrency=o.concurrency,
    )
    return build_cost(
        o,
        demand,
        prices=prices,
        currency=currency,
        fx_rate=fx_rate,
        throughput=throughput,
        calibration=calibration,
        opts=opts,
    )
