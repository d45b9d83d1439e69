"""Pure metric functions of `dsdeploy bench` (no server)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsdeploy.bench.metrics import (
    RequestResult,
    calibrate_words,
    compare_with_plan,
    goodput,
    level_metrics,
    percentile,
    poisson_arrivals,
    record_metrics,
    request_tpot,
    summarize_ms,
)


def test_percentiles_by_hand():
    xs = [4.0, 1.0, 3.0, 2.0]  # sorted 1 2 3 4, rank = p/100 * 3
    assert percentile(xs, 50) == pytest.approx(2.5)  # rank 1.5
    assert percentile(xs, 90) == pytest.approx(3.7)  # rank 2.7 -> 3 + 0.7
    assert percentile(xs, 99) == pytest.approx(3.97)  # rank 2.97
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0
    s = summarize_ms([0.010, 0.020, 0.030])  # seconds in, ms out
    assert s == pytest.approx({"mean": 20.0, "p50": 20.0, "p90": 28.0, "p99": 29.8})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e4), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_matches_numpy(xs, p):
    assert percentile(xs, p) == pytest.approx(float(np.percentile(xs, p)), rel=1e-9, abs=1e-9)


def test_tpot_formula():
    assert request_tpot(1.0, 0.1, 10) == pytest.approx(0.1)  # (1.0 - 0.1) / 9
    assert request_tpot(1.0, 0.1, 1) is None
    assert request_tpot(1.0, 0.1, 0) is None


def _r(ttft, latency, out, prompt=10, ok=True, err=""):
    n = max(out - 1, 0)
    itl = [(latency - ttft) / n] * n if n else []
    return RequestResult(success=ok, ttft=ttft, latency=latency, output_tokens=out, prompt_tokens=prompt,
                         itl=itl, error_type=err)  # fmt: skip


def test_level_metrics_self_consistent():
    rs = [_r(0.1, 1.0, 10), _r(0.2, 2.1, 20), _r(0.3, 0.3, 1), _r(0, 0, 0, ok=False, err="http_500"),
          _r(0, 0, 0, ok=False, err="timeout"), _r(0, 0, 0, ok=False, err="http_500")]  # fmt: skip
    m = level_metrics(rs, duration_s=4.0)
    assert m["completed"] == 3 and m["errors"] == 3
    assert m["errors_by_type"] == {"http_500": 2, "timeout": 1}
    assert m["total_output_tokens"] == 31 and m["total_input_tokens"] == 30
    assert m["output_throughput"] == pytest.approx(31 / 4.0)
    assert m["total_token_throughput"] == pytest.approx(61 / 4.0)
    assert m["request_throughput"] == pytest.approx(3 / 4.0)
    # TPOT over requests with > 1 token only: 0.1 and 0.1
    assert m["tpot_ms"]["mean"] == pytest.approx(100.0)
    assert m["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert m["e2e_ms"]["p50"] == pytest.approx(1000.0)
    assert m["itl_ms"]["mean"] == pytest.approx(100.0)
    assert m["goodput"] is None


def test_goodput_slo():
    rs = [_r(0.1, 1.0, 10), _r(0.5, 1.4, 10), _r(0.1, 3.7, 10), _r(0.05, 0.05, 1)]
    # TPOTs: 0.1, 0.1, 0.4, (0 for the 1-token request)
    assert goodput(rs, 2.0, slo_ttft_ms=200) == pytest.approx(3 / 2.0)
    assert goodput(rs, 2.0, slo_tpot_ms=150) == pytest.approx(3 / 2.0)
    assert goodput(rs, 2.0, slo_ttft_ms=200, slo_tpot_ms=150) == pytest.approx(2 / 2.0)
    assert goodput(rs, 2.0) is None


def test_record_metrics_and_plan_comparison():
    m = level_metrics([_r(0.1, 1.0, 10), _r(0.1, 1.0, 10)], duration_s=1.0)
    rec = record_metrics(m)
    assert rec["tpot_ms"] == pytest.approx(100.0)
    assert rec["decode_tok_s_per_user"] == pytest.approx(10.0)  # 1000 / 100 ms
    assert rec["output_tok_s_total"] == pytest.approx(20.0)
    assert set(rec) == {"decode_tok_s_per_user", "output_tok_s_total", "tpot_ms", "ttft_ms", "e2e_ms"}
    cmp_ = compare_with_plan(m, {"tpot_ms": 80.0, "ttft_ms": 100.0})
    assert cmp_["tpot_ms"]["relative_diff"] == pytest.approx(0.25)
    assert cmp_["ttft_ms"]["relative_diff"] == pytest.approx(0.0)
    assert cmp_["output_tok_s_total"]["predicted"] is None
    assert record_metrics(level_metrics([], 1.0)) == {}


def test_calibrate_words():
    # tokens = 5 + 1.25 * words  ->  100 tokens needs 76 words
    assert calibrate_words(40, 55, 80, 105, 100) == 76
    assert calibrate_words(10, 10, 10, 10, 64) == 64


def test_arrivals():
    rng = random.Random(0)
    ts = poisson_arrivals(100, 10.0, rng)
    assert len(ts) == 100 and ts == sorted(ts)
    assert ts[-1] == pytest.approx(10.0)  # normalized to n / rate, as vLLM does
    c = poisson_arrivals(4, 2.0, rng, constant=True)
    assert c == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert poisson_arrivals(3, math.inf, rng) == [0.0, 0.0, 0.0]
