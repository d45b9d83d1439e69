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
from dsdeploy.planner.answer import plan_answer

# The one options → deployment path, shared with every plan-taking command.
from dsdeploy.planner.options import DEFAULTS, options_from


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        model: opt.Model = DEFAULTS.model,
        config: Path | None = typer.Option(
            None,
            "--config",
            help="Read the architecture from this config.json (HF or DeepSeek inference config); --model then only names it.",
        ),
        weights: opt.Weights = DEFAULTS.weights,
        kv_dtype: opt.KvDtype = DEFAULTS.kv_dtype,
        accelerator: opt.Accelerator = DEFAULTS.accelerator,
        count: opt.Count = DEFAULTS.count,
        nodes: opt.Nodes = DEFAULTS.nodes,
        network: opt.Network = DEFAULTS.scale_out,
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
        calibration: opt.Calibration = None,
        min_count: bool = typer.Option(
            False,
            "--min-count",
            help="Search: the fewest of each catalog accelerator (1–8 per node, up to 4 nodes) that fit.",
        ),
        best_format: bool = typer.Option(
            False, "--best-format", help="Search: the best-quality weight format that fits the given hardware."
        ),
        best_model: bool = typer.Option(
            False,
            "--best-model",
            help="Search: the most capable DeepSeek model and format that fit the given hardware (and --ttft-ms/--tpot-ms).",
        ),
        ttft_ms: float | None = typer.Option(
            None, "--ttft-ms", min=0.001, help="With --best-model: SLO on time to first token, ms."
        ),
        tpot_ms: float | None = typer.Option(
            None, "--tpot-ms", min=0.001, help="With --best-model: SLO on time per output token, ms."
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
        searches = {"min-count": min_count, "best-format": best_format, "best-model": best_model}
        _check_flags(markdown_file, markdown, searches, as_json)
        if (ttft_ms is not None or tpot_ms is not None) and not best_model:
            raise UserError("--ttft-ms/--tpot-ms go with --best-model (plan reports TTFT and TPOT; it has no SLO)")
        o = options_from(locals())
        mode = next((k for k, on in searches.items() if on), "plan")
        res = plan_answer(o, mode, str(calibration) if calibration else None, (ttft_ms, tpot_ms))
        _emit(res, as_json, markdown, markdown_file, mode)


def _check_flags(markdown_file: Path | None, markdown: bool, searches: dict[str, bool], as_json: bool) -> None:
    if markdown_file is not None and not markdown:
        raise UserError(f"unexpected argument '{markdown_file}': a FILE is only taken after --markdown")
    if sum(searches.values()) > 1:
        raise UserError(f"{', '.join('--' + k for k, on in searches.items() if on)} are separate searches; choose one")
    if as_json and markdown:
        raise UserError("--json and --markdown are separate outputs; choose one")


def _emit(res: dict, as_json: bool, markdown: bool, markdown_file: Path | None, mode: str) -> None:
    if as_json:
        typer.echo(json.dumps(res, indent=2, ensure_ascii=False))
        return
    if markdown:
        from dsdeploy.reports.markdown import min_count_markdown, plan_markdown

        if mode == "min-count":
            text = min_count_markdown(res)
        elif mode in ("best-format", "best-model") and not res.get("found"):
            text = f"# dsdeploy plan --{mode}\n\nNothing fits: {res['reason']}\n"
        else:
            text = plan_markdown(res)
            if mode == "best-model":
                text = f"**Best model:** {res['best_model_reason']}\n\n" + text
        if markdown_file is not None:
            write_text(markdown_file, text)
            typer.echo(f"wrote {markdown_file}")
        else:
            typer.echo(text, nl=False)
        return
    from dsdeploy.reports import text as T

    {
        "plan": T.render_plan,
        "min-count": T.render_min_count,
        "best-format": T.render_best_format,
        "best-model": T.render_best_model,
    }[mode](res)
