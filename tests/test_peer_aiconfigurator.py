"""bench/peer_aiconfigurator.py's row -> aiconfigurator mapping (pure; aiconfigurator itself runs only
in the bench, from its own .venv-aic)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from scenario_rows import scenario_row

from dsdeploy.catalog import load_catalog

BENCH = Path(__file__).resolve().parents[1] / "bench" / "peer_aiconfigurator.py"


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("peer_aiconfigurator", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


_row = scenario_row


def test_tp8_row(peer, cat):
    job, why = peer.aic_job(cat, _row(), {})
    assert why == ""
    assert job["system_name"] == "h200_sxm" and job["backend_name"] == "sglang"
    assert (job["tp_size"], job["attention_dp_size"], job["moe_ep_size"], job["moe_tp_size"]) == (8, 1, 1, 8)
    assert job["batch_size"] == 64 and job["nextn"] == 0 and "nextn_accepted" not in job


def test_dp_attention_splits_the_batch_and_ep(peer, cat):
    job, _ = peer.aic_job(cat, _row(tp="1", dp_attention="8", ep="8", concurrency="1024", mtp="1"), {})
    assert job["batch_size"] == 1024 // 8  # aiconfigurator's batch is per attention-DP rank
    assert (job["moe_ep_size"], job["moe_tp_size"]) == (8, 1)
    assert job["nextn"] == 1 and job["nextn_accepted"] == pytest.approx(0.85)


def test_nvfp4_maps_to_moe_fp4_with_fp8_attention(peer, cat):
    job, _ = peer.aic_job(cat, _row(weights="nvfp4", accelerator="b200", engine="trtllm"), {})
    assert job["system_name"] == "b200_sxm"
    assert job["moe_quant_mode"] == "nvfp4" and job["gemm_quant_mode"] == "fp8_block"


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"accelerator": "mi355x"}, "accelerator mi355x"),
        ({"engine": "atom", "accelerator": "b200"}, "engine atom"),
        ({"placement": "experts-on-cpu"}, "placement experts-on-cpu"),
        ({"weights": "gguf-q4_k_m"}, "weights gguf-q4_k_m"),
        ({"metric": "prefill_tok_s"}, "metric prefill_tok_s"),
        ({"concurrency": ""}, "concurrency not stated"),
    ],
)
def test_not_covered_says_why(peer, cat, kw, reason):
    job, why = peer.aic_job(cat, _row(**kw), {})
    assert job is None and reason in why


def test_stats(peer):
    s = peer.stats([0.1, 0.2, 0.5, 0.4])
    assert s["rows"] == 4
    assert s["median_ape"] == pytest.approx(0.3)
    assert s["within_30pct"] == pytest.approx(0.5)
    assert peer.stats([])["median_ape"] is None
