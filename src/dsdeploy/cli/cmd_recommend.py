"""`dsdeploy recommend`: rank buy / rent / API / hybrid options (and the seed article's alternatives)
for a workload, SLOs, an on-premises constraint and a budget. An edge over planner/recommend.py."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from dsdeploy.cli import options as opt


def run_recommend(
    model="deepseek-r1",
    requests_per_day=None,
    tokens_per_day=None,
    input_len=1024,
    output_len=1024,
    peak_concurrency=8,
    ttft_ms=None,
    tpot_ms=None,
    on_prem=False,
    budget=None,
    prices=None,
    currency="USD",
    fx_rate=None,
    kv_dtype="bf16",
    max_quality_rank=7,
    overflow_share=0.2,
    finetune_gpu_hours=800.0,
    api_date=None,
    api_cache_hit=0.0,
    top=12,
    opts=None,
    calibration: Path | None = None,
    market: str | None = None,
) -> dict:
    from dsdeploy.catalog import load_catalog
    from dsdeploy.catalog.calibration import load_calibration
    from dsdeploy.catalog.prices import PriceBook, load_prices
    from dsdeploy.planner.bom import CostOptions
    from dsdeploy.planner.options import resolve_model
    from dsdeploy.planner.recommend import Demand, recommend

    book = PriceBook.build(load_prices(prices), currency, fx_rate)
    d = Demand.build(
        requests_per_day=requests_per_day,
        tokens_per_day=tokens_per_day,
        input_len=input_len,
        output_len=output_len,
        peak_concurrency=peak_concurrency,
        ttft_ms=ttft_ms,
        tpot_ms=tpot_ms,
        on_prem=on_prem,
        budget=budget,
        max_quality_rank=max_quality_rank,
        overflow_share=overflow_share,
        finetune_gpu_hours=finetune_gpu_hours,
        market=market,
    )
    cat = load_catalog()
    model_id, spec = resolve_model(model, None, cat)
    return recommend(
        cat,
        model_id,
        spec,
        d,
        book,
        opts or CostOptions(),
        kv_dtype=kv_dtype,
        api_date=api_date,
        calibration=load_calibration(calibration),
        api_cache_hit=api_cache_hit,
        top=top,
    )


def render(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    dm = res["demand"]
    con.print(
        f"[bold]{res['model']}[/bold]: {dm['requests_per_day']:,.0f} requests/day × ({dm['input_len']} in + {dm['output_len']} out), "
        f"peak {dm['peak_concurrency']} concurrent" + (" — data stays on premises" if dm["on_prem"] else "")
    )
    con.print(
        f"SLOs: TTFT ≤ {dm['ttft_ms_slo']:g} ms ({dm['slo_source']['ttft_ms']}); "
        f"TPOT ≤ {dm['tpot_ms_slo']:g} ms ({dm['slo_source']['tpot_ms']})"
    )
    if dm.get("market"):
        mk = dm["market"]
        con.print(f"Market: {mk['name']} — only parts sold there ({mk['rules']}; as of {mk['date']})")
    t = Table(title=f"Options ({res['currency']}; cost per 1M output tokens at this volume)")
    for col in ("#", "kind", "option", "per 1M out", "per year", "capex", "TTFT ms", "TPOT ms", "ok"):
        t.add_column(
            col, justify="right" if col in ("#", "per 1M out", "per year", "capex", "TTFT ms", "TPOT ms") else "left"
        )
    for o in res["options"]:
        f = lambda x, p=0: "—" if x is None else f"{x:,.{p}f}"  # noqa: E731
        t.add_row(
            str(o["rank"]),
            o["kind"],
            escape(o["label"]),  # labels may carry "[licensed, UNCONFIRMED]": text, not Rich markup
            f(o["cost_per_mtok_output"], 2),
            f(o["annual"]),
            f(o["capex"]),
            f(o["ttft_ms"]),
            f(o["tpot_ms"], 1),
            "yes" if o["feasible"] else "[red]no[/red]",
        )
    con.print(t)
    best = next((o for o in res["options"] if o["feasible"]), None)
    if best:
        con.print(f"[bold]Recommended:[/bold] {escape(best['label'])}")
        for r in best["reasons"]:
            con.print(f"  - {escape(r)}")
    con.print(
        f"[dim]{res['considered']} options considered in {res['elapsed_s']:.2f} s; --json for every option's reasons[/dim]"
    )


def register(app: typer.Typer) -> None:
    @app.command("recommend")
    def recommend_cmd(
        model: opt.ModelId = "deepseek-r1",
        requests_per_day: opt.RequestsPerDay = None,
        tokens_per_day: opt.TokensPerDay = None,
        input_len: opt.InputLen = 1024,
        output_len: opt.OutputLen = 1024,
        peak_concurrency: int = typer.Option(8, "--peak-concurrency", min=1, help="Requests in flight at the peak."),
        ttft_ms: float | None = typer.Option(None, "--ttft-ms", help="SLO: time to first token, ms, at the peak."),
        tpot_ms: float | None = typer.Option(None, "--tpot-ms", help="SLO: time per output token, ms, at the peak."),
        on_prem: bool = typer.Option(
            False, "--on-prem/--cloud-ok", help="Data must stay on premises (rules out API, rent, hybrid)."
        ),
        budget: float | None = typer.Option(None, "--budget", help="Capex limit in --currency."),
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
        api_date: opt.ApiDate = None,
        api_cache_hit: opt.ApiCacheHit = 0.0,
        kv_dtype: opt.KvDtype = "bf16",
        max_quality_rank: int = typer.Option(
            7,
            "--max-quality-rank",
            help="Lowest weight quality to consider (formats.toml quality_rank; 1 = FP8 only, 7 = down to 4-bit).",
        ),
        overflow_share: float = typer.Option(
            0.2, "--overflow-share", min=0.0, max=1.0, help="Hybrid: share of tokens sent to the API at peaks."
        ),
        finetune_gpu_hours: float = typer.Option(
            800.0, "--finetune-gpu-hours", min=0.0, help="Cloud–edge split: rented H100-hours per year for fine-tuning."
        ),
        top: int = typer.Option(
            12, "--top", min=1, help="Options to list (plus the best of each kind and the article's alternatives)."
        ),
        as_json: opt.AsJson = False,
        calibration: opt.Calibration = None,
        market: str | None = typer.Option(
            None,
            "--market",
            help="Buy only accelerators sold in this market under export controls (e.g. cn; catalog buying.toml).",
        ),
    ) -> None:
        """Rank ways to serve a workload: buy, rent, API, hybrid — with cost per 1M tokens, capex, latency, reasons."""
        from dsdeploy.planner.bom import CostOptions

        opts = CostOptions(
            years=years,
            pue=pue,
            electricity_price=electricity_price,
            region=region,
            staff_fte=staff_fte,
            salary=salary,
            maintenance_pct=maintenance_pct,
        )
        res = run_recommend(
            model=model,
            requests_per_day=requests_per_day,
            tokens_per_day=tokens_per_day,
            input_len=input_len,
            output_len=output_len,
            peak_concurrency=peak_concurrency,
            ttft_ms=ttft_ms,
            tpot_ms=tpot_ms,
            on_prem=on_prem,
            budget=budget,
            prices=prices,
            currency=currency,
            fx_rate=fx_rate,
            kv_dtype=kv_dtype,
            max_quality_rank=max_quality_rank,
            overflow_share=overflow_share,
            finetune_gpu_hours=finetune_gpu_hours,
            api_date=api_date,
            api_cache_hit=api_cache_hit,
            top=top,
            opts=opts,
            calibration=calibration,
            market=market,
        )
        if as_json:
            typer.echo(json.dumps(res, indent=2, ensure_ascii=False))
        else:
            render(res)
