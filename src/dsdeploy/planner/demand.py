"""Demand: how much a deployment must serve (requests or tokens a day, lengths, peak concurrency,
SLOs, constraints), and the utilization it implies. Shared by `dsdeploy recommend` and
`dsdeploy cost`, so both price a box at the same utilization for the same demand."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dsdeploy.errors import UserError

MAX_BUSY = 0.8  # size so that the average load keeps one copy ≤ 80 % busy


@dataclass(frozen=True)
class Demand:
    requests_per_day: float
    input_len: int
    output_len: int
    peak_concurrency: int
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    on_prem: bool = False
    budget: float | None = None  # capex limit, book currency
    max_quality_rank: int = 7  # 7 = 4-bit (gguf-q4_k_m / awq-int4); higher = lower-bit quants
    overflow_share: float = 0.2  # hybrid: share of tokens sent to the API at peaks
    finetune_gpu_hours: float = 800.0  # cloud–edge split: rented GPU-hours per year for fine-tuning
    market: str | None = None  # buy only what is sold there (catalog buying.toml [market.<id>])

    @classmethod
    def build(cls, requests_per_day=None, tokens_per_day=None, **kw) -> Demand:
        il, ol = kw.get("input_len", 1024), kw.get("output_len", 1024)
        if il < 0 or ol < 1:
            raise UserError("--input-len must be ≥ 0 and --output-len ≥ 1")
        if (requests_per_day is None) == (tokens_per_day is None):
            raise UserError("give exactly one of --requests-per-day and --tokens-per-day (input + output tokens)")
        rpd = requests_per_day if requests_per_day is not None else tokens_per_day / (il + ol)
        if not (math.isfinite(rpd) and rpd > 0):  # NaN and inf fail too
            raise UserError("the daily volume must be a finite number > 0")
        if kw.get("peak_concurrency", 1) < 1:
            raise UserError("--peak-concurrency must be ≥ 1")
        for k in ("ttft_ms", "tpot_ms", "budget"):
            if kw.get(k) is not None and not (math.isfinite(kw[k]) and kw[k] > 0):
                raise UserError(f"--{k.replace('_', '-')} must be a finite number > 0")
        if not 0 <= kw.get("overflow_share", 0.2) < 1:
            raise UserError("--overflow-share must be in [0, 1)")
        return cls(requests_per_day=rpd, **kw)

    @property
    def output_tokens_per_day(self) -> float:
        return self.requests_per_day * self.output_len

    @property
    def avg_output_tok_s(self) -> float:
        return self.output_tokens_per_day / 86400.0


def copies_and_utilization(need_tok_s: float, box_tok_s: float) -> tuple[int, float]:
    """Copies of a box (each `box_tok_s` output tok/s while busy) that serve `need_tok_s` on average
    with each ≤ MAX_BUSY busy, and the share of the time each is busy:
    copies = ⌈need / (0.8 × box)⌉, utilization = need / (copies × box), clamped to (0, 1]."""
    if box_tok_s <= 0:
        raise UserError("the deployment serves no tokens (throughput 0); there is no utilization to price")
    copies = max(1, math.ceil(need_tok_s / (MAX_BUSY * box_tok_s)))
    return copies, min(1.0, max(need_tok_s / (copies * box_tok_s), 1e-9))
