"""Benchmark metrics: pure functions, no I/O.

Every definition here follows vLLM's `vllm bench serve` (`vllm/benchmarks/serve.py`,
`calculate_metrics`, and `vllm/benchmarks/lib/endpoint_request_func.py`) so that numbers are
comparable with it. docs/bench.md states each definition in words.

Per request (measured by the client, on `time.perf_counter()`):

* ``start``   the moment just before the HTTP request is sent.
* ``ttft``    time from ``start`` to the first SSE event whose ``choices`` list is non-empty
  (its text may be empty: a chat stream's role-only first chunk counts, as in vLLM).
* ``itl``     the gaps between consecutive such events (so ``len(itl) == events - 1``).
* ``latency`` (E2E) time from ``start`` to the *last* such event (the trailing usage chunk and
  ``[DONE]`` do not move it).
* ``output_tokens`` the server's ``usage.completion_tokens`` when the stream reports it, else
  the count from the local tokenizer, else the number of token events.

Per level:

* ``duration`` wall time from the first request of the level (after warm-up) until the last
  request has finished.
* TPOT of one request = (latency - ttft) / (output_tokens - 1), only for output_tokens > 1.
* throughputs = totals over *successful* requests / duration.
* percentiles: linear interpolation between closest ranks (numpy's default).
* goodput = successful requests meeting every SLO given / duration (req/s); a request with one
  output token has TPOT 0 for this test, as in vLLM.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PERCENTILES = (50.0, 90.0, 99.0)


@dataclass
class RequestResult:
    """What one request measured. Times in seconds (perf_counter based)."""

    success: bool = False
    start: float = 0.0
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    error_type: str = ""
    error: str = ""
    events: int = 0  # SSE events with non-empty choices
    usage_reported: bool = False  # the server sent usage.completion_tokens


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between closest ranks.

    Identical to ``numpy.percentile(values, p)`` (method "linear"): sort the values, take the
    fractional rank r = p/100 * (n - 1) and interpolate between the values at floor(r) and
    ceil(r). An empty input gives 0.0 (vLLM computes ``np.percentile(x or 0, p)``).
    """
    if not values:
        return 0.0
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    s = sorted(values)
    rank = p / 100.0 * (len(s) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(s) - 1)
    frac = rank - lo
    return s[lo] + (s[hi] - s[lo]) * frac


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0.0 for an empty input (vLLM: ``np.mean(x or 0)``)."""
    return math.fsum(values) / len(values) if values else 0.0


def summarize_ms(values_s: Sequence[float]) -> dict[str, float]:
    """{"mean", "p50", "p90", "p99"} of values given in seconds, reported in milliseconds."""
    out = {"mean": mean(values_s) * 1000.0}
    for p in PERCENTILES:
        out[f"p{int(p)}"] = percentile(values_s, p) * 1000.0
    return out


def request_tpot(latency_s: float, ttft_s: float, output_tokens: int) -> float | None:
    """Time per output token after the first: (E2E - TTFT) / (output_tokens - 1).

    None when the request produced at most one token (vLLM leaves such requests out of TPOT).
    """
    if output_tokens <= 1:
        return None
    return (latency_s - ttft_s) / (output_tokens - 1)


def goodput(
    results: Iterable[RequestResult],
    duration_s: float,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
) -> float | None:
    """Successful requests per second whose TTFT and TPOT are both within the SLOs given.

    None when no SLO is given. A request with <= 1 output token counts TPOT 0 (vLLM).
    """
    if slo_ttft_ms is None and slo_tpot_ms is None:
        return None
    good = 0
    for r in results:
        if not r.success:
            continue
        if slo_ttft_ms is not None and r.ttft * 1000.0 > slo_ttft_ms:
            continue
        tpot = request_tpot(r.latency, r.ttft, r.output_tokens) or 0.0
        if slo_tpot_ms is not None and tpot * 1000.0 > slo_tpot_ms:
            continue
        good += 1
    return good / duration_s if duration_s > 0 else 0.0


def errors_by_type(results: Iterable[RequestResult]) -> dict[str, int]:
    """Failed requests counted by their error type (e.g. ``http_500``, ``timeout``)."""
    c = Counter(r.error_type or "unknown" for r in results if not r.success)
    return dict(sorted(c.items()))


def level_metrics(
    results: Sequence[RequestResult],
    duration_s: float,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
) -> dict:
    """All metrics of one load level, keyed as in ``dsdeploy bench --json``.

    ``results`` are the finished requests of the level (cancelled ones already removed);
    ``duration_s`` is the level's wall time.
    """
    ok = [r for r in results if r.success]
    ttfts = [r.ttft for r in ok]
    e2es = [r.latency for r in ok]
    itls = [x for r in ok for x in r.itl]
    tpots = [t for r in ok if (t := request_tpot(r.latency, r.ttft, r.output_tokens)) is not None]
    total_out = sum(r.output_tokens for r in ok)
    total_in = sum(r.prompt_tokens for r in ok)
    dur = duration_s if duration_s > 0 else float("nan")
    return {
        "completed": len(ok),
        "errors": len(results) - len(ok),
        "duration_s": duration_s,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "mean_input_tokens": total_in / len(ok) if ok else None,
        "mean_output_tokens": total_out / len(ok) if ok else None,
        "request_throughput": len(ok) / dur,
        "output_throughput": total_out / dur,
        "total_token_throughput": (total_in + total_out) / dur,
        "ttft_ms": summarize_ms(ttfts),
        "tpot_ms": summarize_ms(tpots),
        "itl_ms": summarize_ms(itls),
        "e2e_ms": summarize_ms(e2es),
        "goodput": goodput(ok, duration_s, slo_ttft_ms, slo_tpot_ms),
        "errors_by_type": errors_by_type(results),
    }


def decode_tok_s_per_user(mean_tpot_ms: float) -> float | None:
    """Per-stream generation speed from mean TPOT: 1000 / TPOT_ms (None if TPOT is 0)."""
    return 1000.0 / mean_tpot_ms if mean_tpot_ms > 0 else None


def mean_or_none(values: Sequence[float]) -> float | None:
    """Mean, or None when empty (used for the mean prompt/output lengths of a level)."""
    return mean(values) if values else None


def record_metrics(level: dict) -> dict[str, float]:
    """The scenario-schema metrics of one level: metric id -> value.

    decode_tok_s_per_user = 1000 / mean TPOT (ms); output_tok_s_total = output throughput;
    tpot_ms, ttft_ms, e2e_ms = their means. Metrics without a value (no successful request,
    TPOT undefined) are left out.
    """
    out: dict[str, float] = {}
    if level.get("completed", 0) <= 0:
        return out
    tpot = level["tpot_ms"]["mean"]
    d = decode_tok_s_per_user(tpot)
    if d is not None:
        out["decode_tok_s_per_user"] = d
    out["output_tok_s_total"] = level["output_throughput"]
    if tpot > 0:
        out["tpot_ms"] = tpot
    out["ttft_ms"] = level["ttft_ms"]["mean"]
    out["e2e_ms"] = level["e2e_ms"]["mean"]
    return out


def relative_difference(measured: float | None, predicted: float | None) -> float | None:
    """(measured - predicted) / predicted, or None when either is missing or predicted is 0."""
    if measured is None or predicted is None or predicted == 0:
        return None
    return (measured - predicted) / predicted


def calibrate_words(words_a: int, tokens_a: int, words_b: int, tokens_b: int, target_tokens: int) -> int:
    """Words needed for ``target_tokens`` prompt tokens, from two (words, tokens) probes.

    Fits tokens = overhead + slope * words through the two probes (the overhead is the chat
    template / BOS the server adds) and solves for the target; at least one word.
    """
    if words_a == words_b or tokens_a == tokens_b:
        slope = tokens_b / words_b if words_b else 1.0
        overhead = 0.0
    else:
        slope = (tokens_b - tokens_a) / (words_b - words_a)
        overhead = tokens_a - slope * words_a
    if slope <= 0:
        return max(1, target_tokens)
    return max(1, round((target_tokens - overhead) / slope))


def poisson_arrivals(n: int, rate: float, rng, constant: bool = False, normalize: bool = True) -> list[float]:
    """Send times (s from level start) of ``n`` requests at ``rate`` req/s.

    Poisson: exponential gaps (vLLM's gamma with burstiness 1); constant: gaps of 1/rate. As in
    vLLM, with ``normalize`` the times are rescaled so the last one is n / rate, which keeps the
    offered rate exact for any seed. ``rng`` is a ``random.Random``.
    """
    if n <= 0:
        return []
    if rate == float("inf"):
        return [0.0] * n
    gaps = [1.0 / rate if constant else rng.expovariate(rate) for _ in range(n)]
    t, times = 0.0, []
    for g in gaps:
        t += g
        times.append(t)
    if normalize and times[-1] > 0:
        f = (n / rate) / times[-1]
        times = [x * f for x in times]
    return times


def compare_with_plan(level: dict, predicted: dict) -> dict[str, dict]:
    """Predicted vs measured for the metrics both have: metric -> {predicted, measured,
    relative_diff} with relative_diff = (measured - predicted) / predicted."""
    measured = record_metrics(level)
    out: dict[str, dict] = {}
    for k in ("ttft_ms", "tpot_ms", "decode_tok_s_per_user", "output_tok_s_total", "e2e_ms"):
        if k in predicted or k in measured:
            p, m = predicted.get(k), measured.get(k)
            if p is None and k == "e2e_ms":
                continue
            out[k] = {"predicted": p, "measured": m, "relative_diff": relative_difference(m, p)}
    return out
