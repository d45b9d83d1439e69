"""`dsdeploy bench` against the tiny model served by `dsdeploy serve` (the `tiny_server` session
fixture of tests/conftest.py): a short sweep, checked for self-consistency."""

from __future__ import annotations

import asyncio

import pytest

from dsdeploy.bench.metrics import level_metrics, request_tpot
from dsdeploy.bench.runner import BenchConfig, Runner


@pytest.mark.engine
def test_short_sweep_against_tiny_model(tiny_server):
    cfg = BenchConfig(
        base_url=tiny_server.base_url,
        api_key=getattr(tiny_server, "api_key", None),
        concurrencies=[1, 2],
        num_requests=6,
        input_len=16,
        output_len=16,
        warmup=1,
        timeout_s=120,
    )
    runner = Runner(cfg, log=lambda m: None)
    levels = asyncio.run(runner.sweep())
    assert [lv.concurrency for lv in levels] == [1, 2]
    for lv in levels:
        ok = [r for r in lv.results if r.success]
        assert len(lv.results) == 6
        assert len(ok) == 6, [r.error for r in lv.results if not r.success]
        for r in ok:
            assert r.output_tokens >= 1 and r.ttft > 0 and r.latency >= r.ttft
            t = request_tpot(r.latency, r.ttft, r.output_tokens)
            if t is not None:
                assert t == pytest.approx((r.latency - r.ttft) / (r.output_tokens - 1))
        m = level_metrics(lv.results, lv.duration_s)
        assert m["output_throughput"] == pytest.approx(m["total_output_tokens"] / m["duration_s"])
        assert m["request_throughput"] == pytest.approx(6 / m["duration_s"])
        assert m["duration_s"] >= max(r.latency for r in ok)
        # prompts were sized to ~16 tokens (tokenizer-exact or calibrated from usage)
        assert 8 <= m["mean_input_tokens"] <= 40
