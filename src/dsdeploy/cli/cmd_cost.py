"""`dsdeploy cost`: what a deployment costs to buy and run, per token, against the API and renting.

An edge: parses the same deployment options as `dsdeploy plan`, plus prices and running-cost options,
calls `dsdeploy.planner.bom.cost_report` and renders it. `python -m dsdeploy.cli.cmd_cost --write-doc
docs/cost.md` regenerates the cost documentation from code.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dsdeploy.cli import options as opt
from dsdeploy.errors import UserError


def build_cost(
    model=None,
    weights=None,
    kv_dtype="bf16",
    accelerator=None,
    count=None,
    nodes=1,
    engine=None,
    placement=None,
    cpu=None,
    cpu_sockets=1,
    dram=None,
    dram_gb=None,
    input_len=1024,
    output_len=1024,
    concurrency=16,
    prices=None,
    currency="USD",
    fx_rate=None,
    throughput=None,
    calibration=None,
    opts=None,
) -> dict:
    """Resolve the deployment like `dsdeploy plan` and return the cost report (a dict)."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.catalog.prices import PriceBook, load_prices
    from dsdeploy.cli.cmd_plan import DEFAULT_ACCELERATOR, default_count, default_weights, resolve_model
    from dsdeploy.estimators.memory import Workload, plan_memory
    from dsdeploy.planner.bom import CostOptions, cost_report, predict_throughput
    from dsdeploy.specs.deployment import resolve_deployment

    opts = opts or CostOptions()
    opts.validate()
    for name, v, lo in (
        ("--input-len", input_len, 0),
        ("--output-len", output_len, 1),
        ("--concurrency", concurrency, 1),
    ):
        if v < lo:
            raise UserError(f"{name} must be ≥ {lo}, got {v}")
    book = PriceBook.build(load_prices(prices), currency, fx_rate)
    cat = load_catalog()
    model_id, spec = resolve_model(model, None)
    w = default_weights(spec, weights)
    acc = accelerator if accelerator is not None else (None if placement == "cpu" else DEFAULT_ACCELERATOR)
    if acc is not None and acc.lower() == "none":
        acc = None
    if acc is not None:
        acc = cat.accelerator(acc).id
    n = default_count(cat, acc, count)
    dep = resolve_deployment(
        cat,
        model_id,
        spec,
        w,
        kv_dtype=kv_dtype,
        accelerator=acc,
        count=n,
        nodes=nodes,
        engine=engine,
        placement=placement,
        cpu=cpu,
        cpu_sockets=cpu_sockets,
        dram=dram,
        dram_gb=dram_gb,
    )
    wl = Workload(input_len=input_len, output_len=output_len, concurrency=concurrency)
    mem = plan_memory(dep, wl)
    perf = None
    if throughput is None:
        cal = None
        if calibration is not None:
            from dsdeploy.planner.result import load_calibration

            cal = load_calibration(str(calibration))
        perf = predict_throughput(dep, wl, cal)
    rep = cost_report(cat, dep, wl, mem, book, opts, throughput=throughput, perf=perf)
    if not mem.fits:
        rep["notes"].insert(0, f"this deployment does not run as given ({mem.reason}); its cost is shown anyway")
    return rep


def render(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    cur = rep["currency"]
    con.print(f"[bold]{rep['deployment']}[/bold] — {'fits' if rep['fits'] else '[red]does not fit[/red]'}")
    t = Table(title=f"Bill of materials ({cur})")
    for col in ("item", "spec", "unit", "qty", "subtotal", "label"):
        t.add_column(col, justify="right" if col in ("unit", "qty", "subtotal") else "left")
    for b in rep["bom"]:
        t.add_row(b["item"], b["spec"], f"{b['unit_price']:,.0f}", f"{b['qty']:g}", f"{b['subtotal']:,.0f}", b["label"])
    t.add_row("[bold]capex[/bold]", "", "", "", f"[bold]{rep['capex']:,.0f}[/bold]", "")
    con.print(t)
    a = rep["annual"]
    con.print(
        f"Per year ({rep['years']:g}-year straight line): depreciation {a['depreciation']:,.0f} + energy {a['energy']:,.0f} "
        f"+ staff {a['staff']:,.0f} + maintenance {a['maintenance']:,.0f} = [bold]{a['total']:,.0f} {cur}[/bold]"
    )
    p = rep["power_kw"]
    con.print(
        f"Power: {p['idle']:.2f} kW idle, {p['load']:.2f} kW at load, {p['max']:.2f} kW max; "
        f"{p['average_at_utilization']:.2f} kW average at {rep['utilization']:.0%} busy × PUE {rep['pue']:g} "
        f"= {rep['energy_kwh_per_year']:,.0f} kWh/yr"
    )
    con.print(f"Cooling: {rep['cooling']['guidance']}")
    if rep["storage_load"]:
        s = rep["storage_load"]
        con.print(
            f"Cold start: {s['seconds']:,.0f} s to read the weights at {s['effective_gbs']:g} GB/s ({s['bound']}-bound)"
        )

    def fmt(x):
        return "n/a" if x is None else f"{x:,.2f}"

    con.print(
        f"Cost per 1M output tokens: local [bold]{fmt(rep['cost_per_mtok_output'])}[/bold], "
        f"API {fmt(rep['api_cost_per_mtok_output'])} ({rep['api_price']['provider']} {rep['api_price']['model']} from "
        f"{rep['api_price']['from']}), rent {fmt(rep['rent_cost_per_mtok_output'])} {cur} "
        f"at {rep['throughput_output_tok_s']:,.0f} output tok/s ({rep['labels']['throughput']})"
    )
    be = rep["breakeven_tokens_per_day"]
    con.print(f"Break-even vs the API: {'never' if be is None else f'{be:,.0f} output tokens/day'}")
    for n in rep["notes"]:
        con.print(f"[yellow]note:[/yellow] {n}")
    if rep["unconfirmed"]:
        con.print(
            f"[dim]{len(rep['unconfirmed'])} BOM prices are UNCONFIRMED estimates (see --json 'unconfirmed').[/dim]"
        )


def register(app: typer.Typer) -> None:
    @app.command("cost")
    def cost(
        model: opt.Model = None,
        weights: opt.Weights = None,
        kv_dtype: opt.KvDtype = "bf16",
        accelerator: opt.Accelerator = None,
        count: opt.Count = None,
        nodes: opt.Nodes = 1,
        engine: opt.Engine = None,
        placement: opt.Placement = None,
        cpu: opt.Cpu = None,
        cpu_sockets: opt.CpuSockets = 1,
        dram: opt.Dram = None,
        dram_gb: opt.DramGb = None,
        input_len: opt.InputLen = 1024,
        output_len: opt.OutputLen = 1024,
        concurrency: opt.Concurrency = 16,
        prices: opt.Prices = None,
        currency: opt.Currency = "USD",
        fx_rate: opt.FxRate = None,
        years: opt.Years = 3.0,
        utilization: float = typer.Option(0.5, "--utilization", help="Share of the time the hardware is busy, (0, 1]."),
        pue: opt.Pue = None,
        electricity_price: opt.ElectricityPrice = None,
        region: opt.Region = None,
        staff_fte: opt.StaffFte = None,
        salary: opt.Salary = None,
        maintenance_pct: opt.MaintenancePct = None,
        throughput: float | None = typer.Option(
            None, "--throughput", help="Output tokens/s (all users) — overrides the performance model."
        ),
        api_date: opt.ApiDate = None,
        api_provider: str | None = typer.Option(
            None, "--api-provider", help="deepseek (default), together, wavespeed."
        ),
        api_cache_hit: opt.ApiCacheHit = 0.0,
        storage: str | None = typer.Option(
            None, "--storage", help="Drive class for weights: nvme-gen4 (default), nvme-gen5, nvme-gen3, sata-ssd."
        ),
        drives: int | None = typer.Option(None, "--drives", help="Drives in RAID0 for the cold-start estimate."),
        calibration: opt.Calibration = None,
        as_json: opt.AsJson = False,
    ) -> None:
        """Cost of a deployment: BOM, power, TCO per year, cost per 1M tokens vs the API and renting."""
        from dsdeploy.planner.bom import CostOptions

        opts = CostOptions(
            years=years,
            utilization=utilization,
            pue=pue,
            electricity_price=electricity_price,
            region=region,
            staff_fte=staff_fte,
            salary=salary,
            maintenance_pct=maintenance_pct,
            api_provider=api_provider,
            api_date=api_date,
            api_cache_hit=api_cache_hit,
            storage_class=storage,
            drives=drives,
        )
        rep = build_cost(
            model=model,
            weights=weights,
            kv_dtype=kv_dtype,
            accelerator=accelerator,
            count=count,
            nodes=nodes,
            engine=engine,
            placement=placement,
            cpu=cpu,
            cpu_sockets=cpu_sockets,
            dram=dram,
            dram_gb=dram_gb,
            input_len=input_len,
            output_len=output_len,
            concurrency=concurrency,
            prices=prices,
            currency=currency,
            fx_rate=fx_rate,
            throughput=throughput,
            calibration=calibration,
            opts=opts,
        )
        if as_json:
            typer.echo(json.dumps(rep, indent=2, ensure_ascii=False))
        else:
            render(rep)


if __name__ == "__main__":  # pragma: no cover - doc generation entry point
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--write-doc":
        from dsdeploy.planner.recommend import cost_doc

        Path(sys.argv[2]).write_text(cost_doc(), encoding="utf-8")
        print(f"wrote {sys.argv[2]}")
    else:
        print("usage: python -m dsdeploy.cli.cmd_cost --write-doc docs/cost.md", file=sys.stderr)
        sys.exit(2)
