"""Typer option declarations shared by the commands that take plan options (`plan`, `cost`,
`deploy`, `doctor`, `recommend`) or cost options (`cost`, `recommend`): one flag name, one help
text and one valid range per option (typer rejects a value outside it: one message, exit 2). Each
command's signature takes its plan defaults from `dsdeploy.planner.options.DEFAULTS`, the one set
every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# ---- the model and its formats ------------------------------------------------------------------
Model = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Catalog id or alias, a config.json path, or a .gguf path. Default: deepseek-r1."
    ),
]
ModelId = Annotated[str, typer.Option("--model", "-m", help="Catalog model id or alias.")]
Weights = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        help="Weight format id (fp16, bf16, fp8, int8, awq-int4, gguf-q4_k_m, …). Default: fp16, the seed "
        "article's (a .gguf: its own type).",
    ),
]
KvDtype = Annotated[str, typer.Option("--kv-dtype", help="KV-cache element type: bf16, fp16, fp8, q4_0, int6-avg.")]
Mtp = Annotated[bool, typer.Option("--mtp/--no-mtp", help="Load the MTP module (speculative decoding).")]

# ---- hardware ----------------------------------------------------------------------------------
Accelerator = Annotated[
    str | None,
    typer.Option(
        "--accelerator",
        "-a",
        help="Accelerator id (h100-sxm, h200-sxm, a100-sxm-80g, rtx-4090, apple-m3-ultra, …; 'none' for CPU "
        "only). Default: h100-sxm.",
    ),
]
Count = Annotated[
    int | None,
    typer.Option("--count", "-n", min=1, help="Accelerators per node. Default: 8 for datacenter GPUs, else 1."),
]
Nodes = Annotated[int, typer.Option("--nodes", min=1, help="Nodes (servers).")]
Network = Annotated[
    str | None,
    typer.Option(
        "--network",
        help="Inter-node fabric, a catalog link id (ib-ndr, ib-xdr, roce-400, …). Default: InfiniBand NDR when --nodes > 1.",
    ),
]
Cpu = Annotated[
    str | None,
    typer.Option("--cpu", help="CPU id (epyc-9654, xeon-6980p, …, or 'local' after `dsdeploy doctor --save`)."),
]
CpuSockets = Annotated[int, typer.Option("--cpu-sockets", min=1, help="CPU sockets.")]
Dram = Annotated[
    str | None,
    typer.Option(
        "--dram",
        help="Host memory as TYPE-MTS with xCHANNELS per socket, e.g. ddr5-4800x12 or ddr5 (types: ddr4, ddr5, "
        "mrdimm, lpddr5, lpddr5x).",
    ),
]
DramGb = Annotated[float | None, typer.Option("--dram-gb", min=1.0, help="Host memory size, GB.")]

# ---- how it runs -------------------------------------------------------------------------------
Engine = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Engine id (vllm, sglang, trtllm, llama.cpp, ktransformers, mlx, …). Default: what the format calls for.",
    ),
]
Placement = Annotated[
    str | None,
    typer.Option("--placement", help="gpu, experts-on-cpu, layer-split, cpu or unified. Default: from the hardware."),
]
Tp = Annotated[int | None, typer.Option("--tp", min=1, help="Tensor-parallel size of one attention group.")]
Pp = Annotated[int | None, typer.Option("--pp", min=1, help="Pipeline stages.")]
Ep = Annotated[int | None, typer.Option("--ep", min=1, help="Expert-parallel partitions of the routed experts.")]
DpAttention = Annotated[int | None, typer.Option("--dp-attention", min=1, help="Data-parallel attention groups.")]

# ---- the workload ------------------------------------------------------------------------------
InputLen = Annotated[int, typer.Option("--input-len", min=0, help="Prompt tokens per request.")]
OutputLen = Annotated[int, typer.Option("--output-len", min=0, help="Generated tokens per request.")]
Concurrency = Annotated[
    int, typer.Option("--concurrency", min=1, help="Requests in flight across the whole deployment.")
]
Calibration = Annotated[
    Path | None,
    typer.Option("--calibration", help="Calibration TOML for the performance model. Default: the shipped one."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]

# ---- cost --------------------------------------------------------------------------------------
Prices = Annotated[Path | None, typer.Option("--prices", help="TOML file merged over the packaged prices (any key).")]
Currency = Annotated[str, typer.Option("--currency", help="USD or CNY.")]
FxRate = Annotated[float | None, typer.Option("--fx-rate", help="CNY per USD. Default: the price catalog's [fx].")]
Years = Annotated[float, typer.Option("--years", help="Straight-line depreciation period, years.")]
Pue = Annotated[float | None, typer.Option("--pue", help="PUE (≥ 1). Default: the catalog's global average 1.56.")]
ElectricityPrice = Annotated[float | None, typer.Option("--electricity-price", help="Price per kWh in --currency.")]
Region = Annotated[
    str | None, typer.Option("--region", help="Electricity region: us-avg, us-oh, cn-avg, cn-west, seed, …")
]
StaffFte = Annotated[float | None, typer.Option("--staff-fte", help="Operations staff, FTE. Default 0.5.")]
Salary = Annotated[float | None, typer.Option("--salary", help="Salary per FTE-year in --currency.")]
MaintenancePct = Annotated[float | None, typer.Option("--maintenance-pct", help="Maintenance, % of capex per year.")]
ApiDate = Annotated[
    str | None, typer.Option("--api-date", help="Compare with the API price in force on YYYY-MM-DD. Default: latest.")
]
ApiCacheHit = Annotated[
    float,
    typer.Option("--api-cache-hit", min=0.0, max=1.0, help="Share of API input tokens billed at the cache-hit price."),
]

# ---- demand (`cost`, `recommend`: the same Demand builder, planner/demand.py) -------------------
RequestsPerDay = Annotated[float | None, typer.Option("--requests-per-day", help="Requests per day.")]
TokensPerDay = Annotated[
    float | None,
    typer.Option("--tokens-per-day", help="Tokens per day, input + output (instead of --requests-per-day)."),
]
