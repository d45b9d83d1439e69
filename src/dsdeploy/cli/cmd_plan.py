"""`dsdeploy plan`: will this model run on this hardware, how much memory goes where, and what fits
instead. Defaults are the seed article's scenario: DeepSeek-R1 at FP16 on 8× H100 SXM.

An edge: parses options, calls the planner (`dsdeploy.planner`), renders (`dsdeploy.reports`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

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
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Catalog id or alias, a config.json path, or a .gguf path. Default: deepseek-r1."),
        config: Optional[Path] = typer.Option(None, "--config", help="Read the architecture from this config.json (HF or DeepSeek inference config); --model then only names it."),
        weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Weight format id (fp16, bf16, fp8, int8, awq-int4, gguf-q4_k_m, …). Default: fp16 (a .gguf: its own type)."),
        kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="KV-cache element type: bf16, fp16, fp8, q4_0, int6-avg."),
        accelerator: Optional[str] = typer.Option(None, "--accelerator", "-a", help="Accelerator id (h100-sxm, h200-sxm, a100-sxm-80g, rtx-4090, apple-m3-ultra, …; 'none' for CPU only). Default: h100-sxm."),
        count: Optional[int] = typer.Option(None, "--count", "-n", help="Accelerators per node. Default: 8 for datacenter GPUs, else 1."),
        nodes: int = typer.Option(1, "--nodes", help="Nodes (servers)."),
        engine: Optional[str] = typer.Option(None, "--engine", help="Engine id (vllm, sglang, trtllm, llama.cpp, ktransformers, mlx, …). Default: what the format calls for."),
        placement: Optional[str] = typer.Option(None, "--placement", help="gpu, experts-on-cpu, layer-split, cpu or unified. Default: from the hardware."),
        tp: Optional[int] = typer.Option(None, "--tp", help="Tensor-parallel size of one attention group."),
        pp: Optional[int] = typer.Option(None, "--pp", help="Pipeline stages."),
        ep: Optional[int] = typer.Option(None, "--ep", help="Expert-parallel partitions of the routed experts."),
        dp_attention: Optional[int] = typer.Option(None, "--dp-attention", help="Data-parallel attention groups."),
        cpu: Optional[str] = typer.Option(None, "--cpu", help="CPU id (epyc-9654, xeon-6980p, …, or 'local' after `dsdeploy doctor --save`)."),
        cpu_sockets: int = typer.Option(1, "--cpu-sockets", help="CPU sockets."),
        dram: Optional[str] = typer.Option(None, "--dram", help="Host memory as TYPE-MTS with xCHANNELS per socket, e.g. ddr5-4800x12 or ddr5 (types: ddr4, ddr5, mrdimm, lpddr5, lpddr5x)."),
        dram_gb: Optional[float] = typer.Option(None, "--dram-gb", help="Host memory size, GB."),
        mtp: bool = typer.Option(False, "--mtp/--no-mtp", help="Load the MTP module (speculative decoding)."),
        input_len: int = typer.Option(1024, "--input-len", help="Prompt tokens per request."),
        output_len: int = typer.Option(1024, "--output-len", help="Generated tokens per request."),
        concurrency: int = typer.Option(1, "--concurrency", help="Requests in flight across the whole deployment."),
        calibration: Optional[Path] = typer.Option(None, "--calibration", help="Calibration file for the performance estimator."),
        min_count: bool = typer.Option(False, "--min-count", help="Search: the fewest of each catalog accelerator (1–8 per node, up to 4 nodes) that fit."),
        best_format: bool = typer.Option(False, "--best-format", help="Search: the best-quality weight format that fits the given hardware."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (stable keys; docs/plan-json-schema.md)."),
        markdown: bool = typer.Option(False, "--markdown", help="Print the result as Markdown, or write it to FILE."),
        markdown_file: Optional[Path] = typer.Argument(None, metavar="FILE", help="With --markdown: write the Markdown here."),
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
        for name, v, lo in (("--input-len", input_len, 0), ("--output-len", output_len, 0), ("--concurrency", concurrency, 1)):
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
                cat, model_id, spec, wl, kv_dtype, calibration=cal, accelerator=acc, count=n, nodes=nodes,
                placement=placement, cpu=cpu, cpu_sockets=cpu_sockets, dram=dram, dram_gb=dram_gb,
            )
            return _emit(res, as_json, markdown, markdown_file, "best-format")

        dep = resolve_deployment(
            cat, model_id, spec, w, kv_dtype=kv_dtype, accelerator=acc, count=n, nodes=nodes, engine=engine,
            placement=placement, tp=tp, pp=pp, ep=ep, dp_attention=dp_attention, cpu=cpu, cpu_sockets=cpu_sockets,
            dram=dram, dram_gb=dram_gb, mtp=mtp,
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
            try:
                markdown_file.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UserError(f"cannot write {markdown_file}: {exc.strerror}") from None
            typer.echo(f"wrote {markdown_file}")
        else:
            typer.echo(text, nl=False)
        return
    from dsdeploy.reports import text as T

    {"plan": T.render_plan, "min-count": T.render_min_count, "best-format": T.render_best_format}[mode](res)

