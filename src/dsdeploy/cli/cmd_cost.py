"""`dsdeploy cost`: what a deployment costs to buy and run, per token, against the API and renting.

An edge: parses the same deployment options as `dsdeploy plan` (the planner's one options →
deployment path) and the demand as `dsdeploy recommend` does, plus prices and running-cost options;
calls `dsdeploy.planner.costing` and renders it. `python -m dsdeploy.cli.cmd_cost --write-doc
docs/cost.md` regenerates the cost documentation from code.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dsdeploy.cli import options as opt
from dsdeploy.planner.costing import run_cost
from dsdeploy.planner.options import DEFAULTS, options_from


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
        f"{p['average_at_utilization']:.2f} kW average at {rep['utilization']:.1%} busy × PUE {rep['pue']:g} "
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
        f"at {fmt(rep['throughput_output_tok_s'])} output tok/s ({rep['labels']['throughput']})"
    )
    if rep.get("copies", 1) > 1:
        con.print(f"Copies needed for the demand: {rep['copies']} (figures above are per copy)")
    be = rep["breakeven_tokens_per_day"]
    if rep["throughput_output_tok_s"] is None:
        con.print("Break-even vs the API: n/a (no speed)")
    else:
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
        model: opt.Model = DEFAULTS.model,
        weights: opt.Weights = DEFAULTS.weights,
        kv_dtype: opt.KvDtype = DEFAULTS.kv_dtype,
        accelerator: opt.Accelerator = DEFAULTS.accelerator,
        count: opt.Count = DEFAULTS.count,
        nodes: opt.Nodes = DEFAULTS.nodes,
        engine: opt.Engine = DEFAULTS.engine,
        placement: opt.Placement = DEFAULTS.placement,
        tp: opt.Tp = DEFAULTS.tp,
        pp: opt.Pp = DEFAULTS.pp,
        ep: opt.Ep = DEFAULTS.ep,
        dp_attention: opt.DpAttention = DEFAULTS.dp_attention,
        cpu: opt.Cpu = DEFAULTS.cpu,
        cpu_sockets: opt.CpuSockets = DEFAULTS.cpu_sockets,
        dram: opt.Dram = DEFAULTS.dram,
        dram_gb: opt.DramGb = DEFAULTS.dram_gb,
        mtp: opt.Mtp = DEFAULTS.mtp,
        input_len: opt.InputLen = DEFAULTS.input_len,
        output_len: opt.OutputLen = DEFAULTS.output_len,
        concurrency: opt.Concurrency = DEFAULTS.concurrency,
        requests_per_day: opt.RequestsPerDay = None,
        tokens_per_day: opt.TokensPerDay = None,
        prices: opt.Prices = None,
        currency: opt.Currency = "USD",
        fx_rate: opt.FxRate = None,
        years: opt.Years = 3.0,
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
        o = options_from(locals())
        rep = run_cost(o, requests_per_day, tokens_per_day, opts, prices, currency, fx_rate, throughput, calibration)
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
