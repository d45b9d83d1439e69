"""`dsdeploy bench URL`: load-test an OpenAI-compatible endpoint (an edge: it parses, runs the
sweep from `dsdeploy.bench.runner` and renders; the metric math lives in `dsdeploy.bench.metrics`).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dsdeploy.errors import UserError


def _ints(text: str, name: str) -> list[int]:
    try:
        vals = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise UserError(f"{name} must be positive integers, got {text!r}")
    return vals


def _floats(text: str, name: str) -> list[float]:
    out = []
    for x in text.replace(" ", "").split(","):
        if not x:
            continue
        try:
            v = float(x)
        except ValueError:
            raise UserError(f"{name} must be comma-separated numbers, got {text!r}") from None
        if not v > 0:
            raise UserError(f"{name} must be positive, got {text!r}")
        out.append(v)
    if not out:
        raise UserError(f"{name} is empty")
    return out


def _f(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def _level_name(lv: dict) -> str:
    if lv.get("request_rate"):
        cap = f", c<={lv['concurrency']}" if lv["concurrency"] else ""
        return f"{lv['request_rate']:g} req/s{cap}"
    return f"c={lv['concurrency']}"


def _levels_table(levels: list[dict]) -> Table:
    """One column per level, one row per metric (fits a narrow terminal)."""
    t = Table(title="dsdeploy bench")
    t.add_column("metric")
    for lv in levels:
        t.add_column(_level_name(lv) + (" (partial)" if lv.get("interrupted") else ""), justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("completed", [str(lv["completed"]) for lv in levels]),
        ("errors", [str(lv["errors"]) for lv in levels]),
        ("duration s", [_f(lv["duration_s"], 2) for lv in levels]),
        ("request throughput req/s", [_f(lv["request_throughput"], 2) for lv in levels]),
        ("output throughput tok/s", [_f(lv["output_throughput"]) for lv in levels]),
        ("total token throughput tok/s", [_f(lv["total_token_throughput"]) for lv in levels]),
    ]
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E")):
        for stat in ("mean", "p50", "p90", "p99"):
            rows.append((f"{label} {stat} ms", [_f(lv[key][stat], 2) for lv in levels]))
    if any(lv.get("goodput") is not None for lv in levels):
        rows.append(("goodput req/s", [_f(lv.get("goodput"), 2) for lv in levels]))
    for label, vals in rows:
        t.add_row(label, *vals)
    return t


def _plan_table(levels: list[dict], band) -> Table:
    t = Table(title="predicted (plan) vs measured" + (f" — plan band {band}" if band is not None else ""))
    for col in ("level", "metric", "predicted", "measured", "diff"):
        t.add_column(col, justify="right")
    for lv in levels:
        name = _level_name(lv)
        if lv.get("plan_concurrency") is not None and lv.get("plan_concurrency") != lv["concurrency"]:
            name += f" (plan c={lv['plan_concurrency']})"
        for metric, row in (lv.get("plan_comparison") or {}).items():
            d = row["relative_diff"]
            t.add_row(name, metric, _f(row["predicted"], 2), _f(row["measured"], 2),
                      f"{d * 100:+.1f} %" if d is not None else "-")  # fmt: skip
    return t


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        url: str = typer.Argument(..., help="Server base URL, e.g. http://127.0.0.1:8000"),
        endpoint: str = typer.Option(
            "completions", help="completions (/v1/completions) or chat (/v1/chat/completions)"
        ),
        model: str | None = typer.Option(None, help="Served model name (default: first of /v1/models)"),
        api_key: str | None = typer.Option(None, envvar="OPENAI_API_KEY", help="Bearer token"),
        concurrency: str | None = typer.Option(
            None, help="Fixed-concurrency levels, e.g. 1,4,16 (default 1); with --request-rate: the concurrency cap"
        ),
        request_rate: str | None = typer.Option(
            None, help="Request-rate levels in req/s, e.g. 2,8 (instead of fixed concurrency)"
        ),
        arrival: str = typer.Option("poisson", help="Arrivals for --request-rate: poisson or constant"),
        num_requests: int | None = typer.Option(None, help="Requests per level (default max(16, 4 x concurrency))"),
        duration: float | None = typer.Option(None, help="Seconds per level (no new request after it)"),
        input_len: int | None = typer.Option(None, help="Prompt tokens per request (default 128, or the plan's)"),
        output_len: int | None = typer.Option(None, help="Output tokens per request (default 128, or the plan's)"),
        tokenizer: Path | None = typer.Option(
            None, help="tokenizer.json of the served model (needs the tokenizers package)"
        ),
        warmup: int = typer.Option(1, help="Warm-up requests before the first level (not measured)"),
        timeout: float = typer.Option(300.0, help="Seconds without a byte from the server before a request fails"),
        slo_ttft_ms: float | None = typer.Option(None, help="Goodput SLO on TTFT (ms)"),
        slo_tpot_ms: float | None = typer.Option(None, help="Goodput SLO on TPOT (ms)"),
        seed: int = typer.Option(0, help="Seed for prompts and arrivals"),
        fixed_output: bool = typer.Option(
            True, "--fixed-output/--no-fixed-output", help="Send min_tokens and ignore_eos"
        ),
        transport: str = typer.Option("raw", help="raw (asyncio HTTP/1.1 client, fast) or httpx"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout (no table, no progress)"),
        record: Path | None = typer.Option(None, help="Append scenario-schema rows to this CSV"),
        plan: Path | None = typer.Option(None, help="plan.json from `dsdeploy plan --json`: deployment + predictions"),
        report: Path | None = typer.Option(
            None, "--report", help="Also write a self-contained HTML report (measured points; over --plan's prediction)"
        ),
        deploy_model: str | None = typer.Option(None, help="[record] model id, e.g. deepseek-r1"),
        weights: str | None = typer.Option(None, help="[record] weight format id"),
        kv_dtype: str | None = typer.Option(None, help="[record] KV-cache dtype id"),
        engine: str | None = typer.Option(None, help="[record] engine id"),
        accelerator: str | None = typer.Option(None, help="[record] accelerator id"),
        count: int | None = typer.Option(None, help="[record] accelerators per node"),
        nodes: int | None = typer.Option(None, help="[record] nodes"),
        cpu: str | None = typer.Option(None, help="[record] CPU id"),
        cpu_sockets: int | None = typer.Option(None, help="[record] CPU sockets"),
        dram: str | None = typer.Option(None, help="[record] DRAM, e.g. ddr5-4800x8"),
        placement: str | None = typer.Option(None, help="[record] gpu, experts-on-cpu, layer-split, cpu, unified"),
        tp: int | None = typer.Option(None, help="[record] tensor parallel"),
        pp: int | None = typer.Option(None, help="[record] pipeline parallel"),
        ep: int | None = typer.Option(None, help="[record] expert parallel"),
        dp_attention: int | None = typer.Option(None, help="[record] attention data parallel"),
        mtp: int | None = typer.Option(None, help="[record] 1 if MTP/speculative decoding on"),
    ) -> None:
        """Load-test an OpenAI-compatible endpoint; metrics as `vllm bench serve` defines them."""
        from dsdeploy.bench import record as rec
        from dsdeploy.bench.metrics import compare_with_plan
        from dsdeploy.bench.runner import BenchConfig, Runner, level_to_json, normalize_base_url

        if endpoint not in ("completions", "chat"):
            endpoint = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}.get(endpoint, endpoint)
            if endpoint not in ("completions", "chat"):
                raise UserError("--endpoint must be completions or chat")
        if transport not in ("raw", "httpx"):
            raise UserError("--transport must be raw or httpx")
        if arrival not in ("poisson", "constant"):
            raise UserError("--arrival must be poisson or constant")
        for name, v in (("--num-requests", num_requests), ("--input-len", input_len), ("--output-len", output_len)):
            if v is not None and v < 1:
                raise UserError(f"{name} must be at least 1")
        if duration is not None and not duration > 0:
            raise UserError("--duration must be positive")
        if timeout <= 0:
            raise UserError("--timeout must be positive")
        if warmup < 0:
            raise UserError("--warmup must be >= 0")

        plan_doc = rec.load_plan(plan) if plan else None
        plan_dep = rec.plan_deployment(plan_doc, f"--plan {plan}") if plan_doc is not None else None
        workload = rec.workload_from_plan(plan_doc) if plan_doc else {}
        predicted = rec.predicted_from_plan(plan_doc) if plan_doc else {}

        rates = _floats(request_rate, "--request-rate") if request_rate else None
        if rates:
            caps = _ints(concurrency, "--concurrency") if concurrency else [None]
            if len(caps) > 1:
                raise UserError("with --request-rate, --concurrency is one cap, not a list")
            concs, cap = [], caps[0]
        else:
            default_conc = str(workload.get("concurrency", 1))
            concs, cap = _ints(concurrency or default_conc, "--concurrency"), None

        deployment: dict[str, Any] = {}  # the recorded rows' deployment columns (--record)
        if record:
            dep = rec.deployment_from_plan(plan_doc) if plan_doc else {}
            flags = dict(
                model=deploy_model, weights=weights, kv_dtype=kv_dtype, engine=engine,
                accelerator=accelerator, accelerators_per_node=count, nodes=nodes, cpu=cpu,
                cpu_sockets=cpu_sockets, dram=dram, placement=placement, tp=tp, pp=pp, ep=ep,
                dp_attention=dp_attention, mtp=mtp,
            )  # fmt: skip
            dep.update({k: v for k, v in flags.items() if v is not None})
            deployment = rec.validate_deployment(dep)

        cfg = BenchConfig(
            base_url=url, endpoint=endpoint, model=model, api_key=api_key, concurrencies=concs,
            request_rates=rates, max_concurrency=cap, arrival=arrival, num_requests=num_requests,
            duration_s=duration, input_len=input_len or workload.get("input_len", 128),
            output_len=output_len or workload.get("output_len", 128),
            tokenizer=str(tokenizer) if tokenizer else None, warmup=warmup, timeout_s=timeout,
            slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms, seed=seed, fixed_output=fixed_output,
            transport=transport,
        )  # fmt: skip
        err = Console(stderr=True)
        show_progress = not as_json and sys.stderr.isatty()
        runner = Runner(cfg, log=lambda m: err.print(m, markup=False, highlight=False))
        levels_run = asyncio.run(_run(runner, show_progress, err))

        levels = []
        for lv in levels_run:
            d = level_to_json(lv, slo_ttft_ms, slo_tpot_ms)
            if plan_doc is not None:
                pred = rec.predicted_from_plan(plan_doc, lv.concurrency)
                d["plan_comparison"] = compare_with_plan(d, pred)
                d["plan_concurrency"] = pred.get("concurrency")
            levels.append(d)
        interrupted = runner.stopped
        doc = {
            "endpoint": runner.url,
            "model": runner.model,
            "input_len": cfg.input_len,
            "output_len": cfg.output_len,
            "fixed_output": runner.fixed_output,
            "prompt_calibration": runner.calibration,
            "interrupted": interrupted,
            "levels": levels,
        }
        if plan_doc is not None:
            doc["plan_prediction"] = predicted
            doc["plan_deployment"] = plan_dep.describe() if plan_dep is not None else None

        if record and levels:
            today = _dt.datetime.now(_dt.UTC)
            source = f"dsdeploy bench {normalize_base_url(url)} {today.date().isoformat()}"
            rows = rec.scenario_rows(levels, deployment, source, "bench-" + today.strftime("%Y%m%dt%H%M%S"))
            rec.append_rows(record, rows)
            doc["recorded_rows"] = len(rows)

        if report and levels:
            from dsdeploy.cli.files import write_text
            from dsdeploy.reports.data import bench_report

            slo = {"ttft_ms": slo_ttft_ms, "tpot_ms": slo_tpot_ms}
            write_text(report, bench_report(doc, plan_doc, "this run", slo))
            Console(stderr=True).print(f"wrote {report}")

        if as_json:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            out = Console()
            if levels:
                out.print(_levels_table(levels))
            for lv in levels:
                if lv["errors_by_type"]:
                    name = _level_name(lv)
                    kinds = ", ".join(f"{k}: {v}" for k, v in lv["errors_by_type"].items())
                    out.print(f"errors at {name}: {kinds}")
            if plan_doc is not None and levels:
                out.print(_plan_table(levels, predicted.get("band")))
            if record and levels:
                out.print(f"appended {doc['recorded_rows']} rows to {record}")
            if interrupted:
                out.print("interrupted: partial results (* = level cut short)")
        if interrupted:
            sys.stdout.flush()
            # SystemExit, not typer.Exit: main() runs click with standalone_mode=False, which
            # turns typer.Exit into a return value and would exit 0
            raise SystemExit(130)


async def _run(runner, show_progress: bool, err: Console):
    """Run the sweep, with a Rich progress bar on stderr refreshed by a ticker (the request
    path only bumps counters)."""
    if not show_progress:
        return await runner.sweep()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("errors {task.fields[errors]}"), TimeElapsedColumn(),
        console=err, transient=True,
    )  # fmt: skip
    state: dict[str, Any] = {"task": None, "level": 0}

    def on_level(lv):
        state["level"] += 1

    async def ticker():
        while True:
            await asyncio.sleep(0.25)
            name = f"level {state['level'] + 1}"
            if state["task"] is None:
                state["task"] = progress.add_task(name, total=runner.total, errors=0)
            progress.update(state["task"], description=name, completed=runner.done + runner.errors,
                            total=runner.total, errors=runner.errors)  # fmt: skip

    with progress:
        tick = asyncio.ensure_future(ticker())
        try:
            return await runner.sweep(on_level=on_level)
        finally:
            tick.cancel()
