"""One synthetic measurement row (the scenario schema of data/reference/measurements/SCHEMA.md) for
tests: R1 at FP8 on 8× H200 with SGLang, TP 8, 1k/1k at concurrency 64, a TPOT of 20 ms. Override
any column by keyword."""

from __future__ import annotations

from dsdeploy.validate.scenarios import Row

BASE = dict(
    id="T",
    model="deepseek-r1",
    weights="fp8",
    engine="sglang",
    accelerator="h200-sxm",
    placement="gpu",
    tp="8",
    pp="1",
    ep="1",
    dp_attention="1",
    mtp="0",
    input_len="1024",
    output_len="1024",
    concurrency="64",
    metric="tpot_ms",
    value="20",
)


def scenario_row(**kw: str) -> Row:
    return Row({**BASE, **kw})
