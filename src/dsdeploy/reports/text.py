"""Terminal rendering (Rich) of planner results. Formatting only."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from dsdeploy.reports import fmt_num, gb, perf_cell, verdict_of

PERF_COLUMNS = (
    ("concurrency", "conc."),
    ("ttft_ms", "TTFT ms"),
    ("tpot_ms", "TPOT ms"),
    ("decode_tok_s_per_user", "tok/s/user"),
    ("output_tok_s_total", "out tok/s"),
    ("prefill_tok_s", "prefill tok/s"),
    ("bound", "bound"),
    ("band", "±"),
)


def band_text(v) -> str:
    """The estimator's uncertainty band: a relative half-width (0.15 → ±15 %) or a (lo, hi) pair."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 10:
        return f"±{v * 100:.0f}%"
    return perf_cell(v)


MEMORY_ROWS = (
    ("weights_bytes", "weights"),
    ("kv_bytes", "KV cache (requested workload)"),
    ("activation_bytes", "activations"),
    ("overhead_bytes", "runtime overhead"),
    ("capacity_bytes", "capacity"),
    ("usable_bytes", "usable (engine memory policy)"),
    ("free_bytes", "free"),
)


def memory_table(res: dict) -> Table:
    """One column per device kind (rows are the memory items), so it reads at 80 columns."""
    t = Table(title="Memory per device, GB (10⁹ bytes)", title_justify="left")
    t.add_column("")
    for d in res["per_device"]:
        t.add_column(f"{d['name']}" + (f" ×{d['count']}" if d["count"] > 1 else ""), justify="right")
    for key, label in MEMORY_ROWS:
        cells = []
        for d in res["per_device"]:
            v = gb(d[key], 2)
            if key == "free_bytes":
                v = f"[red]{v}[/red]" if d[key] < 0 else f"[green]{v}[/green]"
            cells.append(v)
        t.add_row(f"[bold]{label}[/bold]" if key == "free_bytes" else label, *cells)
    return t


def alternatives_table(res: dict, title: str = "Alternatives that fit") -> Table:
    ctx = res["workload"]["tokens_per_request"]
    t = Table(title=title, title_justify="left")
    t.add_column("deployment", ratio=1)
    t.add_column("engine", no_wrap=True)
    t.add_column("weights GB", justify="right", no_wrap=True)
    t.add_column("KV tokens", justify="right", no_wrap=True)
    t.add_column(f"requests of {ctx:,}", justify="right", no_wrap=True)
    for a in res["alternatives"]:
        t.add_row(
            a["label"],
            a["engine"],
            gb(a["weights_bytes_total"]),
            f"{a['kv_capacity_tokens']:,}",
            f"{a['requests_at_context']:,}",
        )
    return t


def performance_table(res: dict) -> Table | None:
    rows = res.get("performance_sweep")
    if not rows:
        return None
    label = rows[0].get("label", "")
    t = Table(title=f"Throughput and latency across concurrency ({label} performance estimate)", title_justify="left")
    present = [(k, h) for k, h in PERF_COLUMNS if any(k in r for r in rows)]
    for _, h in present:
        t.add_column(h, justify="right")
    for r in rows:
        t.add_row(*[band_text(r.get(k)) if k == "band" else perf_cell(r.get(k)) for k, _ in present])
    return t


def render_plan(res: dict, console: Console | None = None) -> None:
    c = console or Console()
    verdict = {
        "fits": "[bold green]FITS[/bold green]",
        "queues": "[bold yellow]QUEUES[/bold yellow]",
        "does not fit": "[bold red]DOES NOT FIT[/bold red]",
    }[verdict_of(res)]
    wl = res["workload"]
    par = res["parallelism"]
    head = (
        f"{res['description']}\n"
        f"KV cache {res['kv_dtype']}, tp {par['tp']} · pp {par['pp']} · ep {par['ep']} · dp-attention {par['dp_attention']}"
        f"{' · MTP on' if res.get('mtp') else ''}\n"
        f"workload: {wl['input_len']:,} in + {wl['output_len']:,} out tokens, {wl['concurrency']} concurrent"
    )
    c.print(Panel(head, title="dsdeploy plan", expand=False))
    reason = res["reason"]
    for prefix in ("does not fit: ", "fits: ", "queues: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
    c.print(f"{verdict}: {reason}")
    c.print(f"[bold]Binding constraint:[/bold] {res['binding_text']}")
    c.print(
        f"Weights in total: {gb(res['weights_bytes_total'])} GB · KV cache per token: "
        f"{fmt_num(res['kv_bytes_per_token'])} B · KV capacity: {res['kv_capacity_tokens']:,} tokens "
        f"({res['max_concurrency']:,} requests of {wl['tokens_per_request']:,} tokens)"
    )
    c.print(memory_table(res))
    perf = res.get("performance")
    if perf:
        c.print(
            f"[bold]Predicted at concurrency {perf.get('concurrency', wl['concurrency'])}:[/bold] TTFT {perf_cell(perf.get('ttft_ms'))} ms, "
            f"TPOT {perf_cell(perf.get('tpot_ms'))} ms, {perf_cell(perf.get('decode_tok_s_per_user'))} tok/s per user, "
            f"{perf_cell(perf.get('output_tok_s_total'))} output tok/s in total "
            f"({perf.get('label', '')}, {band_text(perf.get('band'))})"
        )
    pt = performance_table(res)
    if pt is not None:
        c.print(pt)
    if res["alternatives"]:
        c.print(alternatives_table(res))
    elif not res["fits"]:
        c.print("No alternative in the catalog fits this workload.")
    for n in res["notes"]:
        c.print(f"[dim]note:[/dim] {n}")
    if res["unconfirmed"]:
        c.print("[yellow]Rests on UNCONFIRMED estimates:[/yellow] " + "; ".join(res["unconfirmed"]))


def render_min_count(res: dict, console: Console | None = None) -> None:
    c = console or Console()
    wl = res["workload"]
    c.print(
        f"Minimum accelerators for {res['model']} {res['weights']} (KV {res['kv_dtype']}), "
        f"{wl['input_len']:,}+{wl['output_len']:,} tokens × {wl['concurrency']} concurrent "
        f"(1–8 per node, up to {res['search']['max_nodes']} nodes):"
    )
    if res["results"]:
        c.print(
            f"Weights in total: {gb(res['results'][0]['weights_bytes_total'])} GB; TP within a node, PP across nodes; "
            f"requests = concurrent requests of {wl['tokens_per_request']:,} tokens the KV cache holds."
        )
    t = Table()
    t.add_column("accelerator", no_wrap=True)
    t.add_column("devices", justify="right", no_wrap=True)
    t.add_column("nodes", justify="right", no_wrap=True)
    t.add_column("engine", no_wrap=True)
    t.add_column("KV tokens", justify="right", no_wrap=True)
    t.add_column("requests", justify="right", no_wrap=True)
    for r in res["results"]:
        nodes = r["nodes"]
        t.add_row(
            r["accelerator"],
            str(r["accelerators_per_node"] * nodes),
            str(nodes),
            r["engine"],
            f"{r['kv_capacity_tokens']:,}",
            f"{r['requests_at_context']:,}",
        )
    c.print(t)
    if res["not_fitting"]:
        c.print(
            "[dim]Not fitting or not runnable:[/dim] "
            + "; ".join(f"{s['accelerator']} ({s['why']})" for s in res["not_fitting"])
        )


def render_best_format(res: dict, console: Console | None = None) -> None:
    c = console or Console()
    if not res["found"]:
        c.print(f"[bold red]No format fits:[/bold red] {res['reason']}")
        return
    c.print(f"[bold]Best-quality weight format that fits: {res['weights']}[/bold]")
    render_plan(res, c)


def render_best_model(res: dict, console: Console | None = None) -> None:
    c = console or Console()
    if not res["found"]:
        c.print(f"[bold red]No model fits:[/bold red] {res['reason']}")
        return
    c.print(f"[bold]Best model that fits: {res['model']} ({res['weights']})[/bold]")
    c.print(res["best_model_reason"])
    render_plan(res, c)


def render_model(summary: dict, console: Console | None = None) -> None:
    c = console or Console()
    a = summary["architecture"]
    c.print(
        Panel(
            f"{summary['name']} — {a['arch']}, {a['layers']} layers, hidden {a['hidden']:,}, {a['heads']} heads, "
            f"attention {a['attention'].upper()}"
            + (f", {a['n_routed_experts']} routed experts (top-{a['experts_per_token']})" if a["is_moe"] else ""),
            title="dsdeploy model",
            expand=False,
        )
    )
    t = Table(title="Parameters by component", title_justify="left")
    t.add_column("component")
    t.add_column("total", justify="right")
    t.add_column("active per token", justify="right")
    for k, v in summary["params_by_component"].items():
        t.add_row(k, f"{v:,}", f"{summary['active_by_component'][k]:,}")
    t.add_row(
        "[bold]sum[/bold]" + (" (active: no embedding)" if summary["architecture"]["is_moe"] else ""),
        f"[bold]{summary['params_total']:,}[/bold]",
        f"[bold]{summary['params_active']:,}[/bold]",
    )
    c.print(t)
    if summary["architecture"]["is_moe"]:
        c.print("[dim]active excludes the input-embedding lookup (DeepSeek's convention for MoE models)[/dim]")
    pub = summary.get("published")
    if pub:
        c.print(
            f"Published: {pub['params_total_b']:g}B total, {pub['params_active_b']:g}B active ({pub['source_total']})"
        )
    if summary["mtp_params"]:
        c.print(f"MTP module: {summary['mtp_params']:,} more parameters (loaded only with --mtp)")
    kv = Table(title="KV cache per token", title_justify="left")
    kv.add_column("dtype")
    kv.add_column("bytes/token", justify="right")
    for k, v in summary["kv_bytes_per_token"].items():
        kv.add_row(k, fmt_num(v))
    c.print(kv)
    fl = Table(title="FLOPs per decoded token", title_justify="left")
    fl.add_column("context", justify="right")
    fl.add_column("GFLOP", justify="right")
    for ctx, v in summary["flops_per_token_decode"].items():
        fl.add_row(f"{int(ctx):,}", f"{v / 1e9:,.1f}")
    c.print(fl)
    if "gguf_component_bytes" in summary:
        g = Table(title="GGUF tensor bytes by component", title_justify="left")
        g.add_column("component")
        g.add_column("GB", justify="right")
        for k, v in summary["gguf_component_bytes"].items():
            g.add_row(k, gb(v, 3))
        c.print(g)


def render_seedcheck(claims: list[dict], console: Console | None = None) -> None:
    c = console or Console()
    t = Table(title="Seed article: quantitative claims checked", title_justify="left", show_lines=True)
    t.add_column("#", justify="right")
    t.add_column("claim (zh)")
    t.add_column("ours")
    t.add_column("verdict")
    colour = {"right": "green", "roughly right": "green", "wrong": "red", "misleading": "yellow"}
    for i, cl in enumerate(claims, 1):
        v = cl["verdict"]
        t.add_row(str(i), cl["quote_zh"], cl["ours"], f"[{colour.get(v, 'white')}]{v}[/]")
    c.print(t)
