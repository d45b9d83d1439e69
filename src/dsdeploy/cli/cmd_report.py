"""`dsdeploy report`: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched
at view time) with the memory stack, throughput against latency, the alternatives, the launch
command, the inputs and labels, and optionally measured bench runs and the cost. It takes
`dsdeploy plan`'s options; the charts carry `plan --json`'s numbers for the same options.

An edge: gathers the plan (`dsdeploy.reports.data`) and renders it (`dsdeploy.reports.html`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from dsdeploy.cli import cmd_finetune as ft
from dsdeploy.cli import options as opt
from dsdeploy.planner.options import DEFAULTS

Bench = typer.Option(
    None,
    "--bench",
    help="A `dsdeploy bench --json` result: its measured points are overlaid. Repeat to compare several runs.",
)
TtftSlo = typer.Option(None, "--ttft-ms", min=0.0, help="SLO: time to first token, ms (drawn on the chart).")
TpotSlo = typer.Option(None, "--tpot-ms", min=0.0, help="SLO: time per output token, ms (drawn on the chart).")


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        model: opt.Model = DEFAULTS.model,
        config: Path | None = typer.Option(
            None, "--config", help="Read the architecture from this config.json; --model then only names it."
        ),
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
        calibration: opt.Calibration = None,
        bench: list[Path] | None = Bench,
        cost: bool = typer.Option(
            False,
            "--cost",
            help="Add the cost at the demand (--requests-per-day or --tokens-per-day) and the break-even.",
        ),
        requests_per_day: opt.RequestsPerDay = None,
        tokens_per_day: opt.TokensPerDay = None,
        currency: opt.Currency = "USD",
        ttft_ms: float | None = TtftSlo,
        tpot_ms: float | None = TpotSlo,
        model_path: str | None = typer.Option(
            None, "--model-path", help="Weights path for the launch command. Default: /models/MODEL."
        ),
        output: Path = typer.Option(Path("dsdeploy-report.html"), "-o", "--output", help="Write the HTML here."),
        finetune: bool = typer.Option(
            False,
            "--finetune",
            help="Add the training memory stack per GPU (`dsdeploy finetune --json` for -m, -a, -n, --nodes and the "
            "options below; training TP/EP are finetune's defaults).",
        ),
        method: ft.Method = ft.FT.method,
        lora_rank: ft.LoraRank = ft.FT.lora_rank,
        lora_targets: ft.LoraTargets = ft.FT.lora_targets,
        precision: ft.Precision = ft.FT.precision,
        optimizer: ft.Optimizer = ft.FT.optimizer,
        sharding: ft.Sharding = ft.FT.sharding,
        seq_len: ft.SeqLen = ft.FT.seq_len,
        micro_batch: ft.MicroBatch = ft.FT.micro_batch,
        grad_accum: ft.GradAccum = ft.FT.grad_accum,
        grad_ckpt: ft.GradCkpt = ft.FT.grad_ckpt,
        sp: ft.Sp = ft.FT.sp,
        expert_layout: ft.ExpertLayout = ft.FT.expert_layout,
        logits: ft.Logits = ft.FT.logits,
        no_flash: ft.NoFlash = ft.FT.no_flash,
        host_ram_gb: ft.HostRamGb = ft.FT.host_ram_gb,
        storage: ft.Storage = ft.FT.storage,
        drives: ft.Drives = ft.FT.drives,
    ) -> None:
        """Write a self-contained HTML report of a plan (charts, alternatives, launch command, inputs)."""
        from dsdeploy.cli.files import write_text
        from dsdeploy.reports.data import PlanInputs, gather, load_bench
        from dsdeploy.reports.html import render_report

        inp = PlanInputs(
            model=model, config=config, weights=weights, kv_dtype=kv_dtype, accelerator=accelerator,
            count=count, nodes=nodes, engine=engine, placement=placement, tp=tp, pp=pp, ep=ep,
            dp_attention=dp_attention, cpu=cpu, cpu_sockets=cpu_sockets, dram=dram, dram_gb=dram_gb,
            mtp=mtp, input_len=input_len, output_len=output_len, concurrency=concurrency,
            calibration=calibration,
        )  # fmt: skip
        ft_doc = None
        if finetune:  # first: bad fine-tuning input is one message before any plan is built
            fo = ft.FinetuneOptions(
                model=model, method=method, lora_rank=lora_rank, lora_targets=lora_targets, precision=precision,
                optimizer=optimizer, sharding=sharding, accelerator=accelerator,
                count=count if count is not None else ft.FT.count, nodes=nodes, seq_len=seq_len,
                micro_batch=micro_batch, grad_accum=grad_accum, grad_ckpt=grad_ckpt, sp=sp,
                expert_layout=expert_layout, logits=logits, no_flash=no_flash, host_ram_gb=host_ram_gb,
                storage=storage, drives=drives,
            )  # fmt: skip
            ft_doc = ft.finetune_plan(fo)[2]
        runs = [load_bench(p) for p in bench or []]
        _, ctx = gather(
            inp,
            bench_runs=runs,
            cost=(requests_per_day, tokens_per_day) if cost else None,
            currency=currency,
            slo={"ttft_ms": ttft_ms, "tpot_ms": tpot_ms},
            model_path=model_path,
            finetune=ft_doc,
        )
        html = render_report(ctx)
        write_text(output, html)
        typer.echo(f"wrote {output} ({len(html.encode()) / 1e3:,.0f} kB)")
