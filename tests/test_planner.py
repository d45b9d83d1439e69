"""Planner searches (alternatives, minimum count, best format) and the plan_result JSON interface."""

from __future__ import annotations

import json

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import Workload
from dsdeploy.planner import plan as P
from dsdeploy.planner import result as R
from dsdeploy.specs.deployment import resolve_deployment
from dsdeploy.specs.model import load_model_spec

CAT = load_catalog()
R1 = load_model_spec("deepseek-r1")
SEED = Workload(1024, 1024, 1)

PLAN_KEYS = {
    "fits",
    "reason",
    "binding",
    "weights_bytes_total",
    "per_device",
    "kv_capacity_tokens",
    "max_concurrency",
    "alternatives",
    "model",
    "weights",
    "kv_dtype",
    "engine",
    "placement",
    "hardware",
    "parallelism",
    "workload",
    "weights_by_component",
    "kv_bytes_per_token",
    "notes",
    "unconfirmed",
    "labels",
}
DEVICE_KEYS = {
    "name",
    "kind",
    "count",
    "weights_bytes",
    "kv_bytes",
    "activation_bytes",
    "overhead_bytes",
    "capacity_bytes",
    "usable_bytes",
    "free_bytes",
}


@pytest.fixture(scope="module")
def seed():
    dep = resolve_deployment(CAT, "deepseek-r1", R1, "fp16", "bf16", "h100-sxm", 8)
    ev = P.evaluate(dep, SEED)
    return dep, ev, P.alternatives(CAT, dep, SEED)


def test_alternatives_all_fit_and_differ_from_the_request(seed):
    dep, ev, alts = seed
    assert not ev.memory.fits
    assert 3 <= len(alts) <= 8
    for a in alts:
        assert a.memory.fits and a.label
        d = a.deployment
        assert (d.weights.id, d.accelerator.id, d.devices) != ("fp16", "h100-sxm", 8)
        assert a.memory.max_concurrency >= 1
    labels = [a.label for a in alts]
    assert any("fp8 on 16× h100-sxm" in x for x in labels)  # more of the same GPU, native format
    # 4-bit on the seed hardware itself
    assert any(
        a.deployment.weights.id == "awq-int4"
        and a.deployment.accelerator.id == "h100-sxm"
        and a.deployment.devices == 8
        for a in alts
    )


def test_min_count_r1_fp16_and_fp8_on_h100():
    fp16 = P.min_count(CAT, "deepseek-r1", R1, "fp16", "bf16", SEED, "h100-sxm")
    fp8 = P.min_count(CAT, "deepseek-r1", R1, "fp8", "bf16", SEED, "h100-sxm")
    assert (fp16.deployment.per_node, fp16.deployment.nodes) == (8, 3)  # 24 GPUs for 1.34 TB
    assert (fp8.deployment.per_node, fp8.deployment.nodes) == (8, 2)
    # minimality: one node fewer does not fit
    one_less = resolve_deployment(CAT, "deepseek-r1", R1, "fp8", "bf16", "h100-sxm", 8, nodes=1)
    assert not P.evaluate(one_less, SEED).memory.fits


def test_min_count_small_model_is_one_gpu():
    spec = load_model_spec("r1-distill-qwen-7b")
    ev = P.min_count(CAT, "r1-distill-qwen-7b", spec, "bf16", "bf16", SEED, "h100-sxm")
    assert ev.deployment.devices == 1


def test_min_count_all_is_sorted_and_fits():
    res = P.min_count_all(CAT, "deepseek-r1", R1, "fp8", "bf16", SEED)
    assert res
    assert all(e.memory.fits for e in res)
    devs = [e.deployment.devices for e in res]
    assert devs == sorted(devs)
    assert not any(e.deployment.accelerator.unified_memory for e in res)


def test_best_format_is_the_best_ranked_that_fits():
    ev = P.best_format(CAT, "deepseek-r1", R1, SEED, accelerator="h100-sxm", count=8)
    assert ev is not None and ev.memory.fits
    rank = ev.deployment.weights.quality_rank
    assert not ev.deployment.weights.id.startswith("gguf-")  # 8 GPUs: tensor-parallel engines only
    # every strictly better format that a tensor-parallel engine can run on H100 does not fit
    checked = set()
    for f in CAT.formats.values():
        if f.quality_rank < rank and P.format_runs_on(CAT, f.id, "h100-sxm", "gpu") and not f.id.startswith("gguf-"):
            try:
                dep = resolve_deployment(CAT, "deepseek-r1", R1, f.id, "bf16", "h100-sxm", 8)
            except UserError:
                continue
            assert not P.evaluate(dep, SEED).memory.fits, f.id
            checked.add(f.id)
    assert checked >= {"bf16", "fp16", "fp8"}, checked  # the loop really compared something


def test_best_format_on_four_a100_falls_back_to_a_layer_split_gguf():
    """Issue 13: 4× A100 80 GB (4 × 81,920 MiB = 343.6 GB as the driver reports it) holds no
    tensor-parallel format of R1 (AWQ-INT4 is ~370 GB), but Q3_K_M (318.9 GB) fits with llama.cpp
    splitting layers; --best-format used to say none fits."""
    ev = P.best_format(CAT, "deepseek-r1", R1, SEED, accelerator="a100-sxm-80g", count=4)
    assert ev is not None and ev.memory.fits
    assert ev.deployment.weights.id == "gguf-q3_k_m"
    assert ev.deployment.engine.id == "llama.cpp"
    rank = ev.deployment.weights.quality_rank
    better = [f.id for f in CAT.formats.values() if f.quality_rank < rank and f.id.startswith("gguf-")]
    assert better  # Q8_0 .. Q4_K_M do not fit in 343.6 GB
    for f in better:
        dep = resolve_deployment(CAT, "deepseek-r1", R1, f, "bf16", "a100-sxm-80g", 4)
        assert not P.evaluate(dep, SEED).memory.fits, f


def test_plan_result_keys_and_types(seed):
    dep, ev, alts = seed
    res = R.plan_result(CAT, ev, SEED, alts)
    assert PLAN_KEYS <= set(res)
    json.dumps(res)  # JSON-serialisable
    assert res["fits"] is False and res["binding"] == "weights"
    assert isinstance(res["weights_bytes_total"], int) and res["weights_bytes_total"] == ev.memory.weights_bytes_total
    assert res["kv_bytes_per_token"] == 70_272
    for d in res["per_device"]:
        assert DEVICE_KEYS <= set(d)
        assert all(isinstance(d[k], int) for k in DEVICE_KEYS - {"name", "kind"})
    assert res["hardware"]["accelerator"] == "h100-sxm" and res["hardware"]["devices"] == 8
    assert res["parallelism"]["tp"] == 8
    assert res["workload"] == {"input_len": 1024, "output_len": 1024, "concurrency": 1, "tokens_per_request": 2048}
    assert len(res["alternatives"]) == len(alts)
    for a in res["alternatives"]:
        assert a["fits"] and a["requests_at_context"] == a["max_concurrency"] and a["context_tokens"] == 2048
    assert set(res["labels"].values()) <= {"spec", "derived", "unconfirmed", "calibrated", "measured"}
    assert "performance" not in res  # the plan does not fit: no performance prediction


def test_plan_result_performance_when_available():
    dep = resolve_deployment(CAT, "deepseek-r1", R1, "fp8", "bf16", "h200-sxm", 8)
    res = R.plan_result(CAT, P.evaluate(dep, SEED), SEED, [])
    if R.performance_module() is None:
        assert "performance" not in res
        return
    perf = res["performance"]
    for k in ("ttft_ms", "tpot_ms", "decode_tok_s_per_user", "output_tok_s_total", "label"):
        assert k in perf
    assert res["labels"]["performance"] == perf["label"]
    levels = [p["concurrency"] for p in res["performance_sweep"]]
    assert levels[0] == 1 and levels == sorted(levels) and levels[-1] <= res["max_concurrency"]


def test_min_count_and_best_format_results():
    mc = R.min_count_result(CAT, "deepseek-r1", R1, "fp8", "bf16", SEED)
    assert mc["mode"] == "min-count" and mc["results"]
    ids = {r["accelerator"] for r in mc["results"]} | {s["accelerator"] for s in mc["not_fitting"]}
    assert ids == {a.id for a in CAT.accelerators.values() if not a.unified_memory}
    bf = R.best_format_result(CAT, "deepseek-r1", R1, SEED, "bf16", accelerator="h100-sxm", count=8)
    assert bf["found"] and bf["fits"] and bf["mode"] == "best-format"
    none = R.best_format_result(CAT, "deepseek-r1", R1, SEED, "bf16", accelerator="rtx-3060", count=1)
    assert none["found"] is False


def test_model_summary_keys():
    s = R.model_summary(R1, CAT, "deepseek-r1")
    assert s["params_total"] == R1.params_total and s["params_active"] == R1.params_active
    assert s["kv_bytes_per_token"]["bf16"] == 70_272 and s["kv_bytes_per_token"]["fp8"] == 35_136
    assert set(s["kv_bytes_per_token"]) == set(CAT.kv_dtypes)
    assert sum(s["params_by_component"].values()) == s["params_total"]
    assert s["flops_per_token_decode"]["0"] == 2 * R1.params_matmul_active
    assert s["architecture"]["kv_lora_rank"] == 512


def test_gguf_of_unknown_file_type_asks_for_weights_instead_of_guessing():
    """An all-F32 GGUF (file type 0) used to be planned as bf16 (half its size), and any unmapped
    type silently as Q4_K_M."""
    from types import SimpleNamespace

    from dsdeploy.errors import UserError
    from dsdeploy.planner.options import default_weights

    with pytest.raises(UserError, match="pass --weights"):
        default_weights(SimpleNamespace(gguf_file_type=0), None)
    assert default_weights(SimpleNamespace(gguf_file_type=7), None) == "gguf-q8_0"


def test_fp8_does_not_run_on_ascend():
    """Ascend cannot load FP8 weights (hiascend.com techArticles 20250222-1; DeepSeek runs there as W8A8
    INT8 or BF16), so the China recommendation no longer offers 'fp8 on ascend-910b'. FP8 still runs on
    A100 as W8A16 (Marlin) and natively on H20 and MI300X."""
    assert not P.format_runs_on(CAT, "fp8", "ascend-910b", "gpu")
    assert P.format_runs_on(CAT, "int8", "ascend-910b", "gpu")
    for acc in ("a100-sxm-80g", "h20", "mi300x", "l20"):
        assert P.format_runs_on(CAT, "fp8", acc, "gpu"), acc
    with pytest.raises(UserError, match="--best-format --accelerator ascend-910b"):
        resolve_deployment(CAT, "deepseek-r1", R1, "fp8", "bf16", "ascend-910b", 8)
