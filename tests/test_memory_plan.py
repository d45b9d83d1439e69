"""Memory plan: hand-computed weights per device, KV sharding rules, and fit verdicts for the seed
article's scenario and its alternatives."""

from __future__ import annotations

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.estimators.memory import GB, Workload, plan_memory
from dsdeploy.specs.deployment import resolve_deployment
from dsdeploy.specs.model import load_model_spec

CAT = load_catalog()
R1 = load_model_spec("deepseek-r1")
SEED = Workload(1024, 1024, 1)


def plan(weights, acc, count, nodes=1, wl=SEED, model="deepseek-r1", kv="bf16", **kw):
    spec = R1 if model == "deepseek-r1" else load_model_spec(model)
    dep = resolve_deployment(CAT, model, spec, weights, kv, acc, count, nodes=nodes, **kw)
    return dep, plan_memory(dep, wl)


def test_r1_fp8_tp8_weights_per_device_by_hand():
    """DeepSeek-R1 FP8 (DeepSeek's native checkpoint) at TP8 on one 8-GPU node.

    Parameters (config.json: hidden 7168, 61 layers = 3 dense + 58 MoE, 128 heads, q_lora 1536,
    kv_lora 512, rope 64, nope 128, v 128, dense FFN 18432, 256 experts × 2048, 1 shared, vocab 129280):
      attention / layer = q_a 7168·1536 + norm 1536 + q_b 1536·128·192
                        + kv_a 7168·576 + norm 512 + kv_b 512·128·256 + o 128·128·7168 = 187,107,328
      attention   = 61 × 187,107,328            = 11,413,547,008
      dense MLP   = 3 × 3·7168·18432            =  1,189,085,184
      shared exp. = 58 × 3·7168·2048            =  2,554,331,136
      routed exp. = 58 × 256 × 3·7168·2048      = 653,908,770,816
      embedding = lm_head = 129280 × 7168       =    926,679,040 each
      other (router 58·256·7168 + RMSNorms 61·2·7168 + 7168) = 107,312,128
    Bytes: FP8 matmul weights 8 bits + one FP32 scale per 128×128 block = 8.00195 bits (formats.toml);
    embedding, head, router and norms stay 16-bit.
    Sharding at TP8: every matmul weight (attention over heads, MLPs and experts over the 8 GPUs)
    ÷ 8; embedding and head are vocab-parallel ÷ 8; norms and the router are replicated.
    """
    attention, dense, shared, routed = 11_413_547_008, 1_189_085_184, 2_554_331_136, 653_908_770_816
    emb = head = 926_679_040
    other = 58 * 256 * 7168 + 61 * 2 * 7168 + 7168
    assert other == 107_312_128
    fp8 = 8.00195 / 8  # bytes per weight
    per_device = (
        (round(attention * fp8) + round(dense * fp8) + round(shared * fp8) + round(routed * fp8)) / 8
        + (emb * 2 + head * 2) / 8
        + other * 2
    )
    assert per_device / GB == pytest.approx(84.33, abs=0.01)  # > 80 GB: an H100 cannot hold its share

    dep, m = plan("fp8", "h100-sxm", 8)
    assert dep.par.tp == 8 and dep.engine.id == "vllm"
    assert m.devices[0].weights_bytes == pytest.approx(per_device, abs=2)
    assert m.weights_bytes_total == pytest.approx(
        round(attention * fp8) + round(dense * fp8) + round(shared * fp8) + round(routed * fp8) + 4 * emb + 2 * other,
        abs=4,
    )
    assert not m.fits and m.binding == "weights"


def test_mla_kv_is_replicated_across_tp_and_split_across_dp_attention():
    """MLA caches one latent (512 + 64 per layer) with no head dimension, so each TP rank holds the
    whole 70,272 B/token; DP-attention groups each hold their own requests' latents."""
    dep_tp, m_tp = plan("fp8", "h200-sxm", 8, engine="sglang")
    dep_dp, m_dp = plan("fp8", "h200-sxm", 8, engine="sglang", tp=1, dp_attention=8, ep=8)
    assert (dep_tp.par.tp, dep_tp.par.dp_attention) == (8, 1)
    assert (dep_dp.par.tp, dep_dp.par.dp_attention, dep_dp.par.ep) == (1, 8, 8)
    for m, dp in ((m_tp, 1), (m_dp, 8)):
        d = m.devices[0]
        assert d.kv_bytes_per_token == 70_272  # full latent on every device
        assert m.kv_capacity_tokens == int(d.kv_space_bytes / 70_272) * dp
    # DP attention replicates the attention weights (11.4B params at FP8 ≈ 11.4 GB per GPU instead
    # of 1.4 GB) but multiplies the KV pool by 8 groups.
    assert m_dp.devices[0].weights_bytes > m_tp.devices[0].weights_bytes + 9 * GB
    assert m_dp.kv_capacity_tokens > 3 * m_tp.kv_capacity_tokens


def test_gqa_kv_is_split_over_tp_up_to_the_kv_heads():
    # R1-Distill-Llama-70B: 80 layers × 8 KV heads × 128 × 2 (K, V) × 2 B = 327,680 B/token.
    _, m8 = plan("bf16", "h100-sxm", 8, model="r1-distill-llama-70b")
    _, m2 = plan("bf16", "h100-sxm", 2, model="r1-distill-llama-70b")
    assert m8.kv_bytes_per_token == 327_680
    assert m8.devices[0].kv_bytes_per_token == 327_680 / 8
    assert m2.devices[0].kv_bytes_per_token == 327_680 / 2


def test_pipeline_stages_split_the_kv_per_device():
    """PP 2 over R1's 61 layers: the busier stage holds 31 layers, 31 × (512 + 64) × 2 B = 35,712 B
    of KV per token (not 70,272 / 2: the layers do not split evenly)."""
    _, m = plan("fp8", "h100-sxm", 8, nodes=2)
    assert m.devices[0].kv_bytes_per_token == pytest.approx(35_712)


def test_kv_held_for_the_requested_workload():
    wl = Workload(4096, 1024, 16)
    _, m = plan("fp8", "h200-sxm", 8, wl=wl)
    assert m.fits
    assert m.devices[0].kv_bytes == 16 * (4096 + 1024) * 70_272  # replicated: every rank holds it all


@pytest.mark.parametrize(
    "weights, acc, count, nodes, extra, fits",
    [
        ("fp16", "h100-sxm", 8, 1, {}, False),  # the seed article's claim: 1.34 TB on 640 GB
        ("fp8", "h100-sxm", 8, 1, {}, False),  # 84.3 GB of weights per 80 GB GPU
        ("fp8", "h100-sxm", 8, 2, {}, True),  # two HGX nodes
        ("fp16", "h100-sxm", 8, 3, {}, True),  # FP16 needs three
        ("fp8", "h200-sxm", 8, 1, {}, True),  # 141 GB GPUs
        ("fp8", "b200", 8, 1, {}, True),
        ("awq-int4", "h100-sxm", 8, 1, {}, True),  # 4-bit on the seed hardware
        ("awq-int4", "a100-sxm-80g", 1, 1, {}, False),  # the article's "4-bit on one A100"
        ("gguf-q4_k_m", "a100-sxm-80g", 1, 1, {}, False),
        ("gguf-q4_k_m", "rtx-4090", 1, 1, dict(placement="experts-on-cpu", cpu="epyc-9654", dram_gb=512), True),
        ("gguf-q4_k_m", "rtx-4090", 1, 1, dict(placement="experts-on-cpu", cpu="epyc-9654", dram_gb=256), False),
        ("gguf-ud-iq1_s", "h100-sxm", 2, 1, {}, True),  # Unsloth's 131 GB on 2× H100 (facts.md §3e)
    ],
)
def test_seed_scenario_and_alternatives_verdicts(weights, acc, count, nodes, extra, fits):
    _, m = plan(weights, acc, count, nodes, **extra)
    assert m.fits is fits, m.reason


def test_binding_kv_when_concurrency_exceeds_the_cache():
    _, m = plan("fp8", "h100-sxm", 8, nodes=2, wl=Workload(1024, 1024, 1000))
    assert not m.fits and m.binding == "kv"
    assert m.max_concurrency == m.kv_capacity_tokens // 2048 < 1000


def test_experts_on_cpu_puts_routed_experts_in_dram():
    _, m = plan("gguf-q4_k_m", "rtx-4090", 1, placement="experts-on-cpu", cpu="epyc-9654", dram_gb=512)
    gpu, host = m.devices
    assert host.kind == "host" and host.weights_bytes == m.weights_by_component["routed_experts"]
    assert gpu.weights_bytes == pytest.approx(m.weights_bytes_total - m.weights_by_component["routed_experts"], abs=1)


def test_ktransformers_gpu_side_is_sized_from_the_native_fp8_checkpoint():
    """KTransformers + SGLang take --model (the GPU-side tensors) from DeepSeek's FP8 checkpoint and
    only the CPU experts from the GGUF (engines.toml `gpu_weights = "native"`, sourced). By hand,
    with the parameter counts of test_r1_fp8_tp8_weights_per_device_by_hand:
      FP8 at 8.00195 bits: attention 11,413,547,008 + dense 1,189,085,184 + shared 2,554,331,136
                           = 15,156,963,328 params → 15,160,657,838 B
      16-bit: embedding + lm_head 2 × 926,679,040 + other 107,312,128 = 1,960,670,208 params → 3,921,340,416 B
      GPU side = 19,081,998,254 B = 19.1 GB (KTransformers doc/en/fp8_kernel.md: "~19GB VRAM usage").
    llama.cpp with the same GGUF keeps the GGUF's own (Q4_K_M) non-expert tensors; the routed
    experts in DRAM are the same bytes either way."""
    kw = dict(placement="experts-on-cpu", cpu="epyc-9654", dram_gb=512)
    dep_kt, m_kt = plan("gguf-q4_k_m", "rtx-4090", 1, engine="ktransformers", **kw)
    dep_ll, m_ll = plan("gguf-q4_k_m", "rtx-4090", 1, engine="llama.cpp", **kw)
    assert dep_kt.gpu_weights is not None and dep_kt.gpu_weights.id == "fp8" and dep_ll.gpu_weights is None
    fp8_bytes = 15_156_963_328 * 8.00195 / 8 + 1_960_670_208 * 2
    assert m_kt.devices[0].weights_bytes == pytest.approx(fp8_bytes, rel=1e-6)
    assert m_ll.devices[0].weights_bytes / GB == pytest.approx(10.8, abs=0.05)
    assert m_kt.devices[1].weights_bytes == m_ll.devices[1].weights_bytes
    assert m_kt.kv_capacity_tokens < m_ll.kv_capacity_tokens


def test_seed_fp16_does_not_fit_by_the_margin_of_the_weights():
    _, m = plan("fp16", "h100-sxm", 8)
    d = m.devices[0]
    # 1,342 GB / 8 GPUs = 167.8 GB of weights per 80 GB GPU (+ the replicated norms/router)
    assert d.weights_bytes / GB == pytest.approx(1342.05 / 8, rel=0.002)
    assert d.free_bytes < -90 * GB
    assert m.kv_capacity_tokens == 0 and m.max_concurrency == 0


def test_only_gpu_placement_replicates():
    """Two RTX 4090s with the experts in DRAM are one llama.cpp/KTransformers instance, not two
    replicas (it used to count devices as replicas and double the predicted throughput)."""
    dep, _ = plan("gguf-q4_k_m", "rtx-4090", 2, placement="experts-on-cpu", cpu="epyc-9654", dram_gb=512)
    assert dep.replicas == 1
    dep, _ = plan("fp8", "h200-sxm", 8, nodes=2, tp=8, pp=1)
    assert dep.replicas == 2


def test_kv_per_device_is_its_own_dp_group_share():
    """DP attention 8 on 8× H200: each GPU holds the KV of its own eighth of the requests.
    32 requests × (1024 + 1024) tokens = 65,536 tokens; 8,192 per GPU; MLA latent per token
    (kv_lora 512 + rope 64) × 61 layers × 2 B = 70,272 B → 8,192 × 70,272 = 575,668,224 B."""
    _, m = plan("fp8", "h200-sxm", 8, tp=1, dp_attention=8, wl=Workload(1024, 1024, 32))
    assert m.fits
    assert m.devices[0].kv_bytes == 575_668_224


def test_gpu_expert_slots_by_hand():
    """R1 Q4_K_M, experts on one RTX 4090 (llama.cpp sizing): the card has 24,564 MiB = 25.757 GB as
    nvidia-smi reports it (RLinf#255); the plan leaves about 13.84 GB free (25.757 − 10.75 weights −
    0.14 KV − 0.16 activations − 0.86 overhead); one expert index across the 58 MoE layers is
    395.9 GB / 256 ≈ 1.547 GB; half of 13.84 GB holds 4 of them (6.92 / 1.547 = 4.5)."""
    from dsdeploy.estimators.memory import gpu_expert_slots

    dep, m = plan(
        "gguf-q4_k_m", "rtx-4090", 1, engine="llama.cpp", placement="experts-on-cpu", cpu="epyc-9654", dram_gb=512
    )
    assert m.devices[0].capacity_bytes == 24_564 * 1024**2
    assert m.devices[0].free_bytes / GB == pytest.approx(13.84, abs=0.01)
    assert gpu_expert_slots(dep, m) == 4
    assert gpu_expert_slots(dep, m, share=1.0) == 8  # 13.84 / 1.547 = 8.9
