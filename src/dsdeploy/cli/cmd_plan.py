"""`dsdeploy plan`: will this model run on this hardware, how much memory goes where, and what fits
instead. Defaults are the seed article's scenario: DeepSeek-R1 at FP16 on 8× H100 SXM.

An edge: parses options, calls the planner (`dsdeploy.planner`), renders (`dsdeploy.reports`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dsdeploy.cli import options as opt
from dsdeploy.cli.files import write_text
from dsdeploy.errors import UserError

# Shared with `cost`, `recommend`, `deploy` and `doctor` (defaults live in the planner layer).
from dsdeploy.planner.options import (  # noqa: E402,F401
    DEFAULT_ACCELERATOR,
    DEFAULT_COUNT_DATACENTER,
    DEFAULT_MODEL,
    DEFAULT_WEIGHTS,
    GGUF_FILE_TYPES,
    default_count,
    default_weights,
    resolve_model,
)


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        model: opt.Model = None,
        config: Path | None = typer.Option(
            None,
            "--config",
            help="Read the architecture from this config.json (HF or DeepSeek inference config); --model then only names it.",
        ),
        weights: opt.Weights = None,
        kv_dtype: opt.KvDtype = "bf16",
        accelerator: opt.Accelerator = None,
        count: opt.Count = None,
        nodes: opt.Nodes = 1,
        network: opt.Network = None,
        engine: opt.Engine = None,
        placement: opt.Placement = None,
        tp: opt.Tp = None,
        pp: opt.Pp = None,
        ep: opt.Ep = None,
        dp_attention: opt.DpAttention = None,
        cpu: opt.Cpu = None,
        cpu_sockets: opt.CpuSockets = 1,
        dram: opt.Dram = None,
        dram_gb: opt.DramGb = None,
        mtp: opt.Mtp = False,
        input_len: opt.InputLen = 1024,
        output_len: opt.OutputLen = 1024,
        concurrency: opt.Concurrency = 1,
        calibration: opt.Calibration = None,
        min_count: bool = typer.Option(
            False,
            "--min-count",
            help="Search: the fewest of each catalog accelerator (1–8 per node, up to 4 nodes) that fit.",
        ),
        best_format: bool = typer.Option(
            False, "--best-format", help="Search: the best-quality weight format that fits the given hardware."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the result as JSON (stable keys; docs/plan-json-schema.md)."
        ),
        markdown: bool = typer.Option(False, "--markdown", help="Print the result as Markdown, or write it to FILE."),
        markdown_file: Path | None = typer.Argument(
            None, metavar="FILE", help="With --markdown: write the Markdown here."
        ),
    ) -> None:
        """Plan a deployment: verdict, memory per device, binding constraint, alternatives that fit."""
        from dsdeploy.catalog import load_catalog
        from dsdeploy.estimators.memory import Workload
        from dsdeploy.planner import plan as planner
        from dsdeploy.planner import result as R
        from dsdeploy.specs.deployment import resolve_deployment

        if markdown_file is not None and not markdown:
            raise UserError(f"unexpected argument '{markdown_file}': a FILE is only taken after --markdown")
        if min_count and best_format:
            raise UserError("--min-count and --best-format are separate searches; choose one")
        if as_json and markdown:
            raise UserError("--json and --markdown are separate outputs; choose one")
        for name, v, lo in (
            ("--input-len", input_len, 0),
            ("--output-len", output_len, 0),
            ("--concurrency", concurrency, 1),
        ):
            if v < lo:
                raise UserError(f"{name} must be ≥ {lo}, got {v}")
        if input_len + output_len < 1:
            raise UserError("--input-len + --output-len must be at least 1 token")

        cat = load_catalog()
        model_id, spec = resolve_model(model, config)
        w = default_weights(spec, weights)
        cat.format(w)  # unknown id → one message with close matches
        cat.kv_dtype(kv_dtype)
        wl = Workload(input_len=input_len, output_len=output_len, concurrency=concurrency)
        if engine is None and spec.gguf_component_bytes is not None:
            engine = "llama.cpp"

        if min_count:
            res = R.min_count_result(cat, model_id, spec, w, kv_dtype, wl)
            return _emit(res, as_json, markdown, markdown_file, "min-count")

        acc = accelerator if accelerator is not None else (None if placement == "cpu" else DEFAULT_ACCELERATOR)
        if acc is not None and acc.lower() == "none":
            acc = None
        if acc is not None:
            acc = cat.accelerator(acc).id
        n = default_count(cat, acc, count)
        cal = R.load_calibration(str(calibration) if calibration else None)

        if best_format:
            res = R.best_format_result(
                cat,
                model_id,
                spec,
                wl,
                kv_dtype,
                calibration=cal,
                accelerator=acc,
                count=n,
                nodes=nodes,
                placement=placement,
                cpu=cpu,
                cpu_sockets=cpu_sockets,
                dram=dram,
                dram_gb=dram_gb,
            )
            return _emit(res, as_json, markdown, markdown_file, "best-format")

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
            tp=tp,
            pp=pp,
            ep=ep,
            dp_attention=dp_attention,
            cpu=cpu,
            cpu_sockets=cpu_sockets,
            dram=dram,
            dram_gb=dram_gb,
            mtp=mtp,
            scale_out=network,
        )
        ev = planner.evaluate(dep, wl)
        alts = planner.alternatives(cat, dep, wl)
        res = R.plan_result(cat, ev, wl, alts, calibration=cal)
        _emit(res, as_json, markdown, markdown_file, "plan")


def _emit(res: dict, as_json: bool, markdown: bool, markdown_file: Path | None, mode: str) -> None:
    if as_json:
        typer.echo(json.dumps(res, indent=2, ensure_ascii=False))
        return
    if markdown:
        from dsdeploy.reports.markdown import min_count_markdown, plan_markdown

        if mode == "min-count":
            text = min_count_markdown(res)
        elif mode == "best-format" and not res.get("found"):
            text = f"# dsdeploy plan --best-format\n\nNo format fits: {res['reason']}\n"
        else:
            text = plan_markdown(res)
        if markdown_file is not None:
            write_text(markdown_file, text)
            typer.echo(f"wrote {markdown_file}")
        else:
            typer.echo(text, nl=False)
        return
    from dsdeploy.reports import text as T

    {"plan": T.render_plan, "min-count": T.render_min_count, "best-format": T.render_best_format}[mode](res)
