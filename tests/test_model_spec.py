"""ModelSpec against published figures and hand arithmetic; config/GGUF readers and their errors.

Published figures: catalog/data/models.toml (each with its source), facts.md §3.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.errors import UserError
from dsdeploy.specs.model import from_config_file, from_gguf, from_hf_config, load_model_spec

CAT = load_catalog()
MODEL_IDS = sorted(CAT.models)

# facts.md §3d: KV cache bytes per token at BF16.
# MLA: (kv_lora_rank + qk_rope_head_dim) × layers × 2 B; GQA: 2 (K,V) × layers × kv_heads × head_dim × 2 B.
KIB = 1024
KV_BF16 = {
    "deepseek-v3": (512 + 64) * 61 * 2,  # 70,272 B
    "deepseek-r1": (512 + 64) * 61 * 2,
    "deepseek-v3.1": (512 + 64) * 61 * 2,
    "deepseek-v3.2": (512 + 64) * 61 * 2,
    "deepseek-v2": (512 + 64) * 60 * 2,  # 69,120 B
    "deepseek-coder-v2": (512 + 64) * 60 * 2,
    "deepseek-v2-lite": (512 + 64) * 27 * 2,  # 31,104 B (27 layers, facts.md §3b)
    "r1-distill-qwen-1.5b": 28 * KIB,  # 2 × 28 × 2 × 128 × 2
    "r1-distill-qwen-7b": 56 * KIB,  # 2 × 28 × 4 × 128 × 2
    "r1-distill-qwen-14b": 192 * KIB,  # 2 × 48 × 8 × 128 × 2
    "r1-distill-qwen-32b": 256 * KIB,  # 2 × 64 × 8 × 128 × 2
    "r1-distill-llama-8b": 128 * KIB,  # 2 × 32 × 8 × 128 × 2
    "r1-distill-llama-70b": 320 * KIB,  # 2 × 80 × 8 × 128 × 2
    "dsdeploy-tiny": (512 + 64) * 3 * 2,  # 3,456 B: DeepSeek's MLA sizes, 3 layers (tinymodel config)
}


def test_every_catalog_model_has_a_kv_expectation():
    assert set(KV_BF16) == set(MODEL_IDS)
    assert KV_BF16["deepseek-v3"] == 70_272 and KV_BF16["deepseek-v2"] == 69_120


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_params_total_within_half_percent_of_published(model_id):
    spec = load_model_spec(model_id)
    published = CAT.models[model_id].published_params_total_b.value * 1e9
    assert spec.params_total == pytest.approx(published, rel=0.005), (spec.params_total, published)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_kv_bytes_per_token_bf16(model_id):
    spec = load_model_spec(model_id)
    assert spec.kv_bytes_per_token(CAT.kv_dtype("bf16").bytes_per_element.value) == KV_BF16[model_id]
    # FP8 is exactly half (one byte per element)
    assert spec.kv_bytes_per_token(CAT.kv_dtype("fp8").bytes_per_element.value) == KV_BF16[model_id] / 2


@pytest.mark.parametrize("model_id", ["deepseek-v3", "deepseek-r1", "deepseek-v3.1", "deepseek-v3.2"])
def test_v3_family_active_params_match_deepseeks_precise_figure(model_id):
    # README_WEIGHTS.md gives the precise 36.7B (the README rounds it to 37B).
    spec = load_model_spec(model_id)
    assert spec.params_active == pytest.approx(36.7e9, rel=0.005)


def _round_sig(x: float, digits: int) -> float:
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def test_v2_active_params_within_published_rounding():
    # DeepSeek publishes V2's activated parameters only as "21B": two significant digits, so any
    # count in [20.5B, 21.5B) agrees with it. Ours is 20.85B.
    for mid in ("deepseek-v2", "deepseek-coder-v2"):
        spec = load_model_spec(mid)
        assert _round_sig(spec.params_active / 1e9, 2) == 21


def test_v2_lite_active_params_near_published():
    # "2.4B" activated (V2 paper / SCHEMA.md; facts.md marks V2-Lite's figures UNCONFIRMED).
    # Our count is 2.4514B: 1.4M parameters (0.06 %) above the 2.45B edge of what rounds to 2.4
    # (see the strict xfail below). We hold it to the rounding half-width plus 0.1 %.
    spec = load_model_spec("deepseek-v2-lite")
    assert abs(spec.params_active - 2.4e9) <= 0.05e9 + 0.001 * 2.4e9


@pytest.mark.xfail(
    strict=True,
    reason="our 2.4514B rounds to 2.5B, not the published 2.4B: DeepSeek's counting "
    "convention for V2-Lite is not published (excluding the router and norms would give 2.448B)",
)
def test_v2_lite_active_params_round_to_published_strictly():
    spec = load_model_spec("deepseek-v2-lite")
    assert _round_sig(spec.params_active / 1e9, 2) == 2.4


@pytest.mark.parametrize("model_id", [m for m in MODEL_IDS if m.startswith("r1-distill")])
def test_dense_models_active_equals_total(model_id):
    spec = load_model_spec(model_id)
    assert not spec.is_moe
    assert spec.params_active == spec.params_total
    assert spec.active_by_component() == spec.params_by_component()


def test_v3_counts_by_hand():
    """facts.md §3a DERIVED check: per-layer attention 187.1M, per-expert 44.04M, routed 653.9B."""
    s = load_model_spec("deepseek-r1")
    h, heads = 7168, 128
    q = h * 1536 + 1536 + 1536 * heads * (128 + 64)  # q_a (+ its norm) and q_b
    kv = h * (512 + 64) + 512 + 512 * heads * (128 + 128)  # kv_a (+ norm) and kv_b
    o = heads * 128 * h
    assert s.attention_params_per_layer() == q + kv + o == 187_107_328
    assert s.expert_params() == 3 * h * 2048 == 44_040_192
    assert s.params_by_component()["routed_experts"] == 58 * 256 * 44_040_192  # 653.9B
    assert s.params_by_component()["embedding"] == 129_280 * h  # 0.93B


# ------------------------------------------------------------------------------ readers
def test_catalog_aliases_resolve():
    assert load_model_spec("r1").name == "deepseek-r1"
    assert load_model_spec("deepseek-r1:7b").name == "r1-distill-qwen-7b"


def test_config_json_path(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(CAT.model_config("r1-distill-qwen-7b")))
    assert load_model_spec(str(p)).params_total == load_model_spec("r1-distill-qwen-7b").params_total
    assert load_model_spec(str(tmp_path)).params_total == load_model_spec("r1-distill-qwen-7b").params_total


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "kv_lora_rank", "n_routed_experts"])
def test_malformed_config_names_the_missing_field(tmp_path, field):
    cfg = CAT.model_config("deepseek-r1")
    del cfg[field]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=field):
        from_config_file(p)


def test_bad_field_value_is_named():
    cfg = CAT.model_config("deepseek-r1")
    cfg["num_attention_heads"] = "many"
    with pytest.raises(UserError, match="num_attention_heads"):
        from_hf_config(cfg)


def test_not_json_and_unknown_type(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{ not json")
    with pytest.raises(UserError, match="not valid JSON"):
        from_config_file(p)
    with pytest.raises(UserError, match="model_type"):
        from_hf_config({"model_type": "gpt_neox", "hidden_size": 8})


# ------------------------------------------------------------------------------ GGUF
def _write_tiny_deepseek2_gguf(path, with_kv_lora=True):
    """A tiny deepseek2 GGUF: MLA metadata keys as llama.cpp's converter writes them, and a few
    tensors (F32/F16) whose byte sizes we know."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch="deepseek2")
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(1)
    w.add_vocab_size(100)
    w.add_leading_dense_block_count(1)
    w.add_expert_count(8)
    w.add_expert_used_count(2)
    w.add_expert_shared_count(1)
    w.add_expert_feed_forward_length(32)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_q_lora_rank(24)
    if with_kv_lora:
        w.add_kv_lora_rank(16)
    w.add_key_length(16 + 8)
    w.add_value_length(16)
    w.add_key_length_mla(16 + 8)
    w.add_value_length_mla(16)
    w.add_rope_dimension_count(8)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tensors = {
        "token_embd.weight": np.zeros((100, 64), np.float16),  # 12,800 B
        "output.weight": np.zeros((100, 64), np.float16),  # 12,800 B
        "output_norm.weight": np.zeros(64, np.float32),  # 256 B
        "blk.0.attn_q_a.weight": np.zeros((24, 64), np.float16),  # 3,072 B
        "blk.0.attn_kv_a_norm.weight": np.zeros(16, np.float32),  # 64 B
        "blk.0.ffn_up.weight": np.zeros((128, 64), np.float16),  # 16,384 B
        "blk.1.ffn_up_exps.weight": np.zeros((8, 32, 64), np.float16),  # 32,768 B
        "blk.1.ffn_up_shexp.weight": np.zeros((32, 64), np.float16),  # 4,096 B
        "blk.1.ffn_gate_inp.weight": np.zeros((8, 64), np.float32),  # 2,048 B
    }
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_from_gguf_reads_mla_fields_and_component_bytes(tmp_path):
    p = tmp_path / "tiny.gguf"
    _write_tiny_deepseek2_gguf(p)
    s = from_gguf(p)
    assert (s.arch, s.attention, s.layers, s.hidden, s.heads, s.vocab) == ("deepseek_v3", "mla", 2, 64, 4, 100)
    assert (s.kv_lora_rank, s.q_lora_rank, s.qk_rope_head_dim, s.qk_nope_head_dim, s.v_head_dim) == (16, 24, 8, 16, 16)
    assert (s.n_routed_experts, s.experts_per_token, s.n_shared_experts, s.moe_intermediate) == (8, 2, 1, 32)
    assert s.dense_layers == 1 and s.max_position == 4096 and not s.tie_embeddings
    assert s.kv_elements_per_token == 2 * (16 + 8)
    assert s.gguf_component_bytes == {
        "embedding": 12_800,
        "lm_head": 12_800,
        "attention": 3_072 + 64,
        "dense_mlp": 16_384,
        "shared_experts": 4_096,
        "routed_experts": 32_768,
        "other": 256 + 2_048,
    }
    assert s.gguf_file_type == str(1)  # MOSTLY_F16
    assert load_model_spec(str(p)).gguf_component_bytes == s.gguf_component_bytes


def test_gguf_missing_field_is_named(tmp_path):
    p = tmp_path / "broken.gguf"
    _write_tiny_deepseek2_gguf(p, with_kv_lora=False)
    with pytest.raises(UserError, match="deepseek2.attention.kv_lora_rank"):
        from_gguf(p)


def test_not_a_gguf(tmp_path):
    p = tmp_path / "junk.gguf"
    p.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(UserError, match="GGUF"):
        from_gguf(p)
    with pytest.raises(UserError, match="not found"):
        from_gguf(tmp_path / "missing.gguf")
