"""Performance model: each mechanism against hand-computed values, plus invariants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsdeploy.catalog import load_catalog
from dsdeploy.estimators.calibration import Calibration, GroupParams
from dsdeploy.estimators.memory import Workload
from dsdeploy.estimators.performance import concurrency_levels, experts_touched, predict, step_cost
from dsdeploy.specs.deployment import resolve_deployment
from dsdeploy.specs.model import load_model_spec

FIXTURE = Path(__file__).parent / "fixtures" / "mini_scenarios.csv"


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


@pytest.fixture(scope="module")
def r1():
    return load_model_spec("deepseek-r1")


def test_experts_touched_v3():
    # E·(1−(1−k/E)^T) with E = 256, k = 8 (DeepSeek-V3 config)
    assert experts_touched(256, 8, 1) == pytest.approx(8.0)
    assert experts_touched(256, 8, 8) == pytest.approx(57.4, abs=0.1)  # 256·(1−0.96875^8)
    assert experts_touched(256, 8, 64) == pytest.approx(222.4, abs=0.1)  # 256·(1−0.96875^64)
    assert experts_touched(256, 8, 10_000) == pytest.approx(256.0)


def test_single_stream_decode_m3_ultra_is_bytes_over_bandwidth(cat, r1):
    """R1 Q4_K_M on an M3 Ultra, one stream: time per token = bytes read ÷ (bandwidth × efficiency)."""
    dep = resolve_deployment(
        cat, "deepseek-r1", r1, "gguf-q4_k_m", accelerator="apple-m3-ultra", count=1, engine="llama.cpp"
    )
    eff = 0.6
    cal = Calibration(groups=(GroupParams("llama.cpp", "unified", bw_eff=eff, compute_eff=0.5),))
    # Hand count, bytes per token at context 0 (bpw from formats.toml, params from config.json):
    attention = 61 * (187_105_280 + 1536 + 512) * 4.75 / 8  # MLA projections + q/kv norms, Q4_K/Q6_K mix
    dense_mlp = 3 * 3 * 7168 * 18432 * 4.844 / 8  # 3 dense FFN layers
    shared = 58 * 3 * 7168 * 2048 * 4.844 / 8  # 1 shared expert per MoE layer
    lm_head = 129280 * 7168 * 6.5625 / 8  # output.weight Q6_K
    other = (58 * 256 * 7168 + 61 * 2 * 7168 + 7168) * 32 / 8  # router + layer norms, F32
    routed = 58 * 8 * 3 * 7168 * 2048 * 4.844 / 8  # 8 of 256 experts per MoE layer
    bytes_per_token = attention + dense_mlp + shared + lm_head + other + routed
    expected_s = bytes_per_token / (819e9 * eff)  # 819 GB/s, facts.md §1a
    c = step_cost(dep, cal.groups[0], tokens=1, seqs=1, context=0, prefill=False)
    assert c.bound == "memory"
    assert c.memory_s == pytest.approx(expected_s, rel=0.002)
    pr = predict(dep, Workload(0, 128, 1), cal)
    assert pr.tpot_ms == pytest.approx(expected_s * 1e3, rel=0.01)
    assert 20 < pr.decode_tok_s_per_user < 30  # ≈ 22 GB per token at 491 GB/s


def test_mtp_raises_tokens_per_step(cat, r1):
    base = resolve_deployment(cat, "deepseek-r1", r1, "fp8", accelerator="h200-sxm", count=8)
    mtp = resolve_deployment(cat, "deepseek-r1", r1, "fp8", accelerator="h200-sxm", count=8, mtp=True)
    wl = Workload(1024, 1024, 1)
    assert predict(mtp, wl).tpot_ms < predict(base, wl).tpot_ms


def test_a100_runs_fp8_as_bf16_compute(cat):
    spec = load_model_spec("r1-distill-qwen-32b")
    a100 = resolve_deployment(cat, "r1-distill-qwen-32b", spec, "fp8", accelerator="a100-sxm-80g", count=1)
    cal = Calibration()
    p, _ = cal.lookup("vllm", "datacenter-gpu")
    c = step_cost(a100, p, tokens=4096, seqs=1, context=0, prefill=True)
    # 2 × 31.99e9 matmul params × 4096 tokens at 312 TFLOPS BF16 (A100 has no FP8) × the roofline's
    # 0.7 × M/(M + m½) = 4096/(4096 + 64); attention adds ~4 % at 4k tokens (within rel=0.05)
    eff = 0.7 * 4096 / (4096 + 64)
    assert c.compute_s == pytest.approx(2 * spec.params_matmul_active * 4096 / (312e12 * eff), rel=0.05)


def test_tp_allreduce_adds_time(cat, r1):
    one = resolve_deployment(cat, "deepseek-r1", r1, "fp8", accelerator="h200-sxm", count=8, tp=8)
    c = step_cost(one, Calibration().lookup("vllm", "datacenter-gpu")[0], tokens=1, seqs=1, context=1000, prefill=False)
    # 2 all-reduces per layer × 61 layers, each ≥ the link latency (10 µs in the catalog)
    assert c.comm_s >= 2 * 61 * 10e-6


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=64), st.integers(min_value=1, max_value=4))
def test_more_concurrency_never_lowers_throughput_or_tpot(c, factor):
    cat = load_catalog()
    spec = load_model_spec("deepseek-r1")
    dep = resolve_deployment(cat, "deepseek-r1", spec, "fp8", accelerator="h200-sxm", count=8)
    a = predict(dep, Workload(512, 256, c))
    b = predict(dep, Workload(512, 256, c * factor))
    assert b.output_tok_s_total >= a.output_tok_s_total * 0.999
    assert b.tpot_ms >= a.tpot_ms * 0.999


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=16, max_value=8000), st.integers(min_value=1, max_value=4))
def test_longer_prompt_never_lowers_ttft(n, mult):
    cat = load_catalog()
    spec = load_model_spec("r1-distill-qwen-7b")
    dep = resolve_deployment(cat, "r1-distill-qwen-7b", spec, "bf16", accelerator="rtx-4090", count=1)
    assert predict(dep, Workload(n * mult, 64, 1)).ttft_ms >= predict(dep, Workload(n, 64, 1)).ttft_ms * 0.999


def test_concurrency_levels():
    assert concurrency_levels(100) == [1, 4, 16, 64, 100]
    assert concurrency_levels(1) == [1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dsdeploy.cli.main", *args], capture_output=True, text=True)


def test_validate_fixture_json():
    r = _cli("validate", str(FIXTURE), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    rows = {x["id"]: x for x in d["rows"]}
    assert set(rows) == {"T1", "T2", "T3", "T4"}
    assert rows["T3"]["predicted"] is None and "h999-imaginary" in rows["T3"]["reason"]
    assert rows["T1"]["predicted"] > 0 and rows["T1"]["ape"] == pytest.approx(
        abs(rows["T1"]["predicted"] - 20.21) / 20.21
    )
    assert "input_len=512" in rows["T4"]["defaults"]  # a major row without workload still predicted
    assert d["summary"]["coverage"] == pytest.approx(0.75)
    for k in ("median_ape", "p90_ape", "within_30pct", "by_metric"):
        assert k in d["summary"]


def test_validate_scope_filter_and_bad_file(tmp_path):
    r = _cli("validate", str(FIXTURE), "--json", "--max-ambiguity", "none")
    assert {x["id"] for x in json.loads(r.stdout)["rows"]} == {"T1", "T2", "T3"}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,model\nX,deepseek-r1\n")
    r = _cli("validate", str(bad))
    assert r.returncode == 2 and "missing column" in r.stderr and "Traceback" not in r.stderr


def test_calibrate_roundtrip(tmp_path):
    out = tmp_path / "cal.toml"
    r = _cli("calibrate", str(FIXTURE), "-o", str(out), "--no-merge")
    assert r.returncode == 0, r.stderr
    from dsdeploy.catalog.calibration import load_calibration

    cal = load_calibration(out)
    # T1 (unified), T2 (gpu) and T4 (cpu) are alone in their families and (engine, hardware class)
    # groups, so nothing is fitted (a fit needs 2 rows): only the physics priors are written, with
    # 0 rows: the global fallback and one per hardware family (T3's accelerator is unknown)
    assert [(g.engine, g.hw_class, g.rows) for g in cal.groups] == [
        ("*", "*", 0),
        ("physics", "gpu", 0),
        ("physics", "gpu-amd", 0),
        ("physics", "hybrid", 0),
        ("physics", "cpu", 0),
        ("physics", "unified", 0),
    ]
    empty = tmp_path / "roofline.toml"  # no groups: the pure roofline
    empty.write_text("")
    before = json.loads(_cli("validate", str(FIXTURE), "--json", "--calibration", str(empty)).stdout)
    r = _cli("validate", str(FIXTURE), "--json", "--calibration", str(out))
    assert r.returncode == 0
    after = json.loads(r.stdout)
    assert after["summary"]["median_ape"] < before["summary"]["median_ape"]


def test_batch_per_replica_is_capped_by_one_replica_s_kv():
    """The memory plan's max_concurrency covers every replica; one replica's batch may use only its
    share (it used to be capped by the whole deployment's)."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.estimators.memory import Workload, plan_memory
    from dsdeploy.estimators.performance import predict
    from dsdeploy.specs.deployment import resolve_deployment
    from dsdeploy.specs.model import load_model_spec

    cat = load_catalog()
    dep = resolve_deployment(
        cat,
        "deepseek-r1",
        load_model_spec("deepseek-r1"),
        "fp8",
        "bf16",
        "h200-sxm",
        8,
        nodes=2,
        tp=8,
        pp=1,
        engine="sglang",
    )
    assert dep.replicas == 2
    wl = Workload(8192, 8192, 100_000)
    # a running request holds its prompt and on average half its output: 8192 + 4096 tokens
    cap_tokens = plan_memory(dep, Workload(8192, 8192, 1)).kv_capacity_tokens
    pred = predict(dep, wl)
    assert pred.batch == min(int(cap_tokens / (8192 + 4096)) // 2, int(dep.engine.max_num_seqs.value))


def _step(model, weights, acc, count, nodes=1, **kw):
    from dsdeploy.catalog import load_catalog
    from dsdeploy.estimators.calibration import Calibration
    from dsdeploy.estimators.performance import step_cost
    from dsdeploy.specs.deployment import resolve_deployment
    from dsdeploy.specs.model import load_model_spec

    dep = resolve_deployment(
        load_catalog(), model, load_model_spec(model), weights, "bf16", acc, count, nodes=nodes, **kw
    )
    p, _ = Calibration().lookup(dep.engine.id, "x")
    return dep, step_cost(dep, p, tokens=8, seqs=8, context=4096, prefill=False)


def test_pipeline_stages_do_not_drop_tp_communication():
    """A token passes every stage, so it meets every layer's TP all-reduces whatever pp is; pp only
    adds the stage-to-stage hops. (comm used to be scaled by layers/pp and not multiplied back.)"""
    _, one = _step("deepseek-r1", "fp16", "h100-sxm", 8, nodes=3, tp=8, pp=1)
    _, three = _step("deepseek-r1", "fp16", "h100-sxm", 8, nodes=3, tp=8, pp=3)
    assert three.comm_s > one.comm_s


def test_gqa_kv_read_is_split_across_tp_by_kv_head():
    """R1-Distill-Qwen-32B has 8 KV heads: at TP 8 each GPU reads 1/8 of the KV cache per step.
    Checked as the difference of memory time between two contexts, which is KV only:
    kv/token = 64 layers × 8 heads × 128 × 2 (K, V) × 2 B = 262,144 B; 8 seqs × 4096 more tokens
    → 8,589,934,592 B in all, 1,073,741,824 B per GPU."""
    from dsdeploy.estimators.calibration import Calibration
    from dsdeploy.estimators.performance import step_cost

    dep, _ = _step("r1-distill-qwen-32b", "bf16", "h100-sxm", 8, tp=8)
    p, _ = Calibration().lookup(dep.engine.id, "x")
    a = step_cost(dep, p, tokens=8, seqs=8, context=4096, prefill=False)
    b = step_cost(dep, p, tokens=8, seqs=8, context=8192, prefill=False)
    bw = 2970 / 0.875 * 1e9 * p.bw_eff  # H100: BabelStream triad 2.97 TB/s ÷ the typical 0.875 (hbm_gbs)
    assert (b.memory_s - a.memory_s) * bw == pytest.approx(8 * 4096 * 262_144 / 8, rel=1e-6)


def _r1_h200_sglang():
    from dsdeploy.catalog import load_catalog
    from dsdeploy.specs.deployment import resolve_deployment
    from dsdeploy.specs.model import load_model_spec

    return resolve_deployment(
        load_catalog(),
        "deepseek-r1",
        load_model_spec("deepseek-r1"),
        "fp8",
        "bf16",
        "h200-sxm",
        8,
        tp=8,
        engine="sglang",
    )


def test_open_loop_rate_follows_littles_law():
    """`vllm bench serve --request-rate λ`: the requests in flight are λ × E2E (Little's law), not
    the client's concurrency; throughput is λ × output while the deployment keeps up, and TPOT
    grows with λ (a bigger batch per step). It used to run one request whatever λ was."""
    dep = _r1_h200_sglang()
    wl = Workload(1024, 1024, 1)
    cal = Calibration()
    slow = predict(dep, wl, cal, arrival="rate", request_rate=0.5)
    fast = predict(dep, wl, cal, arrival="rate", request_rate=4.0)
    for lam, pr in ((0.5, slow), (4.0, fast)):
        assert pr.output_tok_s_total == pytest.approx(lam * 1024, rel=0.02)
        e2e_s = pr.e2e_ms / 1e3
        assert pr.batch == pytest.approx(lam * e2e_s, rel=0.05, abs=1)  # N = λ · E2E
    assert fast.batch > slow.batch > 1
    assert fast.tpot_ms > slow.tpot_ms
    assert not any("overloaded" in n for n in fast.notes)


def test_open_loop_overload_is_said_and_capped():
    """A rate the largest batch cannot serve: throughput stops at the deployment's maximum (below
    λ × output) and the prediction says the queue grows."""
    dep = _r1_h200_sglang()
    pr = predict(dep, Workload(1024, 1024, 1), Calibration(), arrival="rate", request_rate=10_000.0)
    assert pr.output_tok_s_total < 10_000.0 * 1024 / 10
    assert any("overloaded" in n for n in pr.notes)


def test_visible_memory_is_what_the_driver_reports():
    """B200's '180 GB' is binary: nvidia-smi reports 183,359 MiB (TensorRT-LLM#10278) = 192.27 GB,
    and engines size their pools from that. An accelerator without the figure keeps its GB."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.estimators.memory import accelerator_bytes

    accs = load_catalog().accelerators
    assert accelerator_bytes(accs["b200"]) == 183_359 * 1024**2
    assert accelerator_bytes(accs["b200"]) / 1e9 == pytest.approx(192.27, abs=0.01)
    assert accelerator_bytes(accs["h200-sxm"]) == 143_771 * 1024**2
    assert accelerator_bytes(accs["h100-sxm"]) == 81_559 * 1024**2  # nccl#1264: '0MiB / 81559MiB'
    assert accelerator_bytes(accs["h800-sxm"]) == 80 * 10**9  # no driver figure in the catalog
    # OCI's B300 quickstart: '0MiB / 275040MiB' = 288.4 GB, 1.5x a B200's
    assert accelerator_bytes(accs["b300"]) / 1e9 == pytest.approx(288.40, abs=0.01)
    # AMD reports binary GB less 16 MiB: MI300X 192 GiB - 16 MiB = 206,141,652,992 B (ROCm#4750)
    assert accelerator_bytes(accs["mi300x"]) == 206_141_652_992 == 192 * 1024**3 - 16 * 1024**2
    # MI355X's entry is derived from that pattern (unconfirmed): this checks the derivation's arithmetic
    assert accs["mi355x"].memory_visible_mib.unconfirmed
    assert accelerator_bytes(accs["mi355x"]) == 288 * 1024**3 - 16 * 1024**2


def test_an_unfitted_hardware_family_gets_its_own_physics_prior():
    """A CPU-only deployment when no CPU row was fitted used to fall through to the generic ("*")
    prior, a GPU's figures (3 µs per kernel, 75 % of bandwidth); it now takes the CPU family's
    physics prior (10 µs per kernel: CPU engines synchronise their threads per op), and says so."""
    from dsdeploy.catalog.calibration import PRIOR_SOURCE
    from dsdeploy.validate.fit import PRIORS, _physics_groups

    gpu_fit = GroupParams("*", "gpu", 0.7, 0.3, step_overhead_us=400.0, source="fitted")
    cal = Calibration(groups=(*_physics_groups(), gpu_fit))
    p, label = cal.lookup("sglang", "cpu")
    assert label == "physics-prior" and p.source == PRIOR_SOURCE
    assert (p.bw_eff, p.kernel_us) == (PRIORS["cpu"].bw_eff, PRIORS["cpu"].kernel_us)
    p, label = cal.lookup("sglang", "datacenter-gpu")  # a fitted family still wins
    assert label == "calibrated-borrowed" and p.source == "fitted"
    p, label = Calibration(groups=(gpu_fit,)).lookup("sglang", "cpu")
    assert label == "roofline"  # no prior in the file at all


def test_streaming_bandwidth_departs_from_the_typical_part():
    """Parts reach different shares of their spec bandwidth in streaming benchmarks (BabelStream
    triad on Azure: MI300X 4.09 of 5.3 TB/s = 0.772, H200 4.15 of 4.8 = 0.865, H100 2.97 of 3.35 =
    0.887; nvbench B200 7.087 of 8.0 = 0.886). The model streams a part at spec × (its share ÷ the
    typical share), the typical share being the median of the shares measured on the parts
    themselves ((0.865 + 0.886) / 2 = 0.875); a sibling part takes its sibling's figure (derived,
    unconfirmed) and a part with neither streams at its spec."""
    import statistics

    from dsdeploy.catalog import load_catalog
    from dsdeploy.estimators.performance import TYPICAL_STREAM_FRACTION, hbm_gbs

    accs = load_catalog().accelerators
    measured = {
        i: a.bandwidth_measured_gbs.value / a.bandwidth_gbs.value
        for i, a in accs.items()
        if a.bandwidth_measured_gbs and not a.bandwidth_measured_gbs.source.startswith("derived:")
    }
    assert set(measured) == {"h100-sxm", "h200-sxm", "b200", "mi300x"}
    assert statistics.median(measured.values()) == pytest.approx(TYPICAL_STREAM_FRACTION, abs=0.0005)
    assert hbm_gbs(accs["mi300x"]) == pytest.approx(4090 / 0.875, rel=1e-9)  # 4,674 GB/s spec-equivalent
    assert hbm_gbs(accs["mi325x"]) == pytest.approx(4090 / 5300 * 6000 / 0.875, rel=1e-3)  # MI300X's share
    assert hbm_gbs(accs["h800-sxm"]) == hbm_gbs(accs["h100-sxm"])  # same die and HBM3
    assert hbm_gbs(accs["mi355x"]) == accs["mi355x"].bandwidth_gbs.value  # no comparable measurement
    assert hbm_gbs(accs["h100-pcie"]) == accs["h100-pcie"].bandwidth_gbs.value  # no measurement


def test_the_fit_set_is_the_three_files_core_rows():
    """bench/accuracy.py --refit and bench/peer_aiconfigurator.py fit on one set: the core rows
    (ambiguity none/minor) of public.csv (38), inferencex-subset.csv (493) and extra.csv (63), the
    counts docs/accuracy.md states."""
    from pathlib import Path

    from dsdeploy.validate.fit import FIT_FILES, core_rows, fit_set

    meas = Path(__file__).resolve().parent.parent / "data" / "reference" / "measurements"
    counts = [len(core_rows(meas / f)) for f in FIT_FILES]
    assert counts == [38, 493, 63]
    rows = fit_set(meas)
    assert len(rows) == 594
    assert all(r.get("scope") == "core" and r.get("ambiguity") in ("none", "minor") for r in rows)
