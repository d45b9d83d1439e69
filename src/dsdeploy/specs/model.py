"""ModelSpec: the architecture numbers every estimator needs, read from real files.

Sources it reads:
- a Hugging Face `config.json` (model_type deepseek_v3, deepseek_v32, deepseek_v2, qwen2, llama,
  mixtral, qwen2_moe, qwen3_moe);
- DeepSeek's own inference config (`inference/configs/config_671B.json` style: `dim`, `n_layers`…);
- a GGUF file's header, through the `gguf` package: architecture metadata, and weight bytes summed
  from the tensors themselves.

Formulas (all per token unless stated):
- MLA KV cache: layers × (kv_lora_rank + qk_rope_head_dim) elements — DeepSeek-V2 paper §2.1.3,
  Table 1 "(d_c + d_h^R) l" (arXiv:2405.04434).
- GQA KV cache: 2 × layers × kv_heads × head_dim elements (K and V).
- Matmul FLOPs: 2 × parameters used (one multiply-add per weight), Kaplan et al. 2020 §2.1.
- Attention FLOPs: decode with absorbed MLA (DeepSeek-V2 §2.1.2 "absorb W^UK into W^Q"): per layer
  2·heads·ctx·(2·kv_lora + rope); prefill without absorption: 2·heads·ctx·(qk_nope + rope + v) per
  layer, with the causal mean context (L+1)/2. GQA: 4·heads·head_dim·ctx per layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsdeploy.errors import UserError

COMPONENTS = (
    "embedding",
    "lm_head",
    "attention",
    "dense_mlp",
    "shared_experts",
    "routed_experts",
    "other",
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str  # deepseek_v3 | deepseek_v2 | qwen2 | llama | mixtral | qwen2_moe | qwen3_moe
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # dense FFN width
    dense_layers: int  # layers with a dense FFN (all of them for dense models)
    attention: str = "gqa"  # "mla" or "gqa"
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0
    shared_intermediate: int = 0  # width of the shared expert block (n_shared × moe_inter for DeepSeek)
    tie_embeddings: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    mtp_layers: int = 0
    max_position: int = 0
    # Weight bytes per component read from a GGUF's tensors (None for config-derived specs).
    gguf_component_bytes: dict[str, int] | None = field(default=None, compare=False)
    gguf_file_type: str | None = None

    # ------------------------------------------------------------------ structure
    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.is_moe else 0

    # ------------------------------------------------------------------ parameters
    def attention_params_per_layer(self) -> int:
        h = self.hidden
        if self.attention == "mla":
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * self.heads * qk_head
            else:
                q = h * self.heads * qk_head
            kv_a = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv_b = self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
            o = self.heads * self.v_head_dim * h
            return q + kv_a + kv_b + o
        q = h * self.heads * self.head_dim
        kv = 2 * h * self.kv_heads * self.head_dim
        o = self.heads * self.head_dim * h
        bias = (self.heads + 2 * self.kv_heads) * self.head_dim if self.qkv_bias else 0
        norm = 2 * self.head_dim if self.qk_norm else 0
        return q + kv + o + bias + norm

    def expert_params(self) -> int:
        """One routed expert (gate, up, down projections)."""
        return 3 * self.hidden * self.moe_intermediate

    def params_by_component(self) -> dict[str, int]:
        """Parameter count per tensor class for the main model (MTP excluded)."""
        h = self.hidden
        emb = self.vocab * h
        head = 0 if self.tie_embeddings else self.vocab * h
        attn = self.layers * self.attention_params_per_layer()
        dense = self.dense_layers * 3 * h * self.intermediate
        shared = self.moe_layers * 3 * h * self.shared_intermediate
        routed = self.moe_layers * self.n_routed_experts * self.expert_params()
        router = self.moe_layers * self.n_routed_experts * h
        norms = self.layers * 2 * h + h
        return {
            "embedding": emb,
            "lm_head": head,
            "attention": attn,
            "dense_mlp": dense,
            "shared_experts": shared,
            "routed_experts": routed,
            "other": router + norms,
        }

    @property
    def params_total(self) -> int:
        return sum(self.params_by_component().values())

    def mtp_params(self) -> int:
        """Unique parameters of the MTP module(s): one MoE decoder layer + eh_proj + norms each
        (DeepSeek-V3 report §2.2; embedding and head shared with the main model)."""
        if not self.mtp_layers:
            return 0
        h = self.hidden
        layer = (
            self.attention_params_per_layer()
            + 3 * h * self.shared_intermediate
            + self.n_routed_experts * self.expert_params()
            + self.n_routed_experts * h
            + 2 * h
        )
        return self.mtp_layers * (layer + 2 * h * h + 3 * h)

    def active_by_component(self) -> dict[str, int]:
        """Parameters used by one token: routed experts count only the top-k selected."""
        comp = self.params_by_component()
        if self.is_moe:
            comp["routed_experts"] = self.moe_layers * self.experts_per_token * self.expert_params()
        return comp

    @property
    def params_active(self) -> int:
        """Active parameters per token.

        MoE models: the weights one token's matmuls use (routed experts: only the top-k), i.e.
        without the input-embedding lookup table. This gives 36.6B for V3/R1, which matches
        DeepSeek's published 36.7B/"37B" (README_WEIGHTS), 20.9B for V2 ("21B") and 2.45B for
        V2-Lite ("2.4B"). DeepSeek's own breakdown says its 36.7B *includes* the 0.9B embedding;
        counting it gives 37.55B, so no single convention reproduces every published split; we
        keep the one whose totals match. Dense models: active = total, the usual convention."""
        if not self.is_moe:
            return self.params_total
        return self.params_matmul_active

    @property
    def params_matmul_active(self) -> int:
        """Weights that take part in one token's matmuls (no input-embedding gather)."""
        comp = self.active_by_component()
        comp.pop("embedding")
        return sum(comp.values())

    # ------------------------------------------------------------------ KV cache
    @property
    def kv_elements_per_token(self) -> int:
        if self.attention == "mla":
            return self.layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * self.layers * self.kv_heads * self.head_dim

    def kv_bytes_per_token(self, bytes_per_element: float) -> float:
        return self.kv_elements_per_token * bytes_per_element

    # ------------------------------------------------------------------ FLOPs
    def attention_flops_decode(self, context: int) -> float:
        """Attention score+value FLOPs for one decoded token attending to `context` tokens."""
        if self.attention == "mla":
            per_layer = 2 * self.heads * context * (2 * self.kv_lora_rank + self.qk_rope_head_dim)
        else:
            per_layer = 4 * self.heads * self.head_dim * context
        return float(self.layers * per_layer)

    def attention_flops_prefill(self, prompt_len: int) -> float:
        """Attention FLOPs for a whole prompt of `prompt_len` tokens (causal)."""
        mean_ctx = (prompt_len + 1) / 2
        if self.attention == "mla":
            per_tok = 2 * self.heads * mean_ctx * (self.qk_nope_head_dim + self.qk_rope_head_dim + self.v_head_dim)
        else:
            per_tok = 4 * self.heads * self.head_dim * mean_ctx
        return float(self.layers * per_tok * prompt_len)

    def flops_per_token_decode(self, context: int) -> float:
        return 2.0 * self.params_matmul_active + self.attention_flops_decode(context)

    def flops_prefill(self, prompt_len: int) -> float:
        return 2.0 * self.params_matmul_active * prompt_len + self.attention_flops_prefill(prompt_len)


# ---------------------------------------------------------------------- readers
def _need(cfg: dict, key: str, where: str):
    if key not in cfg:
        raise UserError(f"{where}: missing field '{key}'")
    val = cfg[key]
    if isinstance(val, bool) or not isinstance(val, int) or val < 0:
        raise UserError(f"{where}: field '{key}' must be a non-negative integer, got {val!r}")
    return val


def _opt(cfg: dict, key: str, default, where: str):
    if key not in cfg or cfg[key] is None:
        return default
    val = cfg[key]
    if isinstance(default, bool):
        return bool(val)
    if isinstance(val, bool) or not isinstance(val, int) or val < 0:
        raise UserError(f"{where}: field '{key}' must be a non-negative integer, got {val!r}")
    return val


def _hf_mla(cfg: dict, mt: str, common: dict, where: str) -> ModelSpec:
    """deepseek_v2 / deepseek_v3 / deepseek_v32: MLA attention, shared + routed experts, MTP layers."""
    n_routed = _need(cfg, "n_routed_experts", where)
    moe_inter = _need(cfg, "moe_intermediate_size", where)
    n_shared = _opt(cfg, "n_shared_experts", 0, where)
    return ModelSpec(
        arch="deepseek_v3" if mt != "deepseek_v2" else "deepseek_v2",
        head_dim=_need(cfg, "qk_nope_head_dim", where) + _need(cfg, "qk_rope_head_dim", where),
        intermediate=_need(cfg, "intermediate_size", where),
        dense_layers=_opt(cfg, "first_k_dense_replace", 0, where),
        attention="mla",
        q_lora_rank=_opt(cfg, "q_lora_rank", 0, where),
        kv_lora_rank=_need(cfg, "kv_lora_rank", where),
        qk_nope_head_dim=_need(cfg, "qk_nope_head_dim", where),
        qk_rope_head_dim=_need(cfg, "qk_rope_head_dim", where),
        v_head_dim=_need(cfg, "v_head_dim", where),
        n_routed_experts=n_routed,
        n_shared_experts=n_shared,
        experts_per_token=_need(cfg, "num_experts_per_tok", where),
        moe_intermediate=moe_inter,
        shared_intermediate=n_shared * moe_inter,
        mtp_layers=_opt(cfg, "num_nextn_predict_layers", 0, where),
        **common,
    )


def _head_dim(cfg: dict, common: dict, where: str) -> int:
    return _opt(cfg, "head_dim", common["hidden"] // common["heads"], where)


def _hf_dense(cfg: dict, mt: str, common: dict, where: str) -> ModelSpec:
    """qwen2 / llama: every layer a dense MLP (the R1 distills)."""
    return ModelSpec(
        arch=mt,
        head_dim=_head_dim(cfg, common, where),
        intermediate=_need(cfg, "intermediate_size", where),
        dense_layers=common["layers"],
        qkv_bias=(mt == "qwen2") or bool(cfg.get("attention_bias", False)),
        **common,
    )


def _hf_mixtral(cfg: dict, mt: str, common: dict, where: str) -> ModelSpec:
    """mixtral: every layer MoE, the experts' size in intermediate_size, no shared expert."""
    return ModelSpec(
        arch=mt,
        head_dim=_head_dim(cfg, common, where),
        intermediate=0,
        dense_layers=0,
        n_routed_experts=_need(cfg, "num_local_experts", where),
        experts_per_token=_need(cfg, "num_experts_per_tok", where),
        moe_intermediate=_need(cfg, "intermediate_size", where),
        **common,
    )


def _hf_qwen_moe(cfg: dict, mt: str, common: dict, where: str) -> ModelSpec:
    """qwen2_moe / qwen3_moe: MoE every `decoder_sparse_step` layers except `mlp_only_layers`."""
    head_dim = _head_dim(cfg, common, where)
    layers = common["layers"]
    step = _opt(cfg, "decoder_sparse_step", 1, where) or 1
    mlp_only = cfg.get("mlp_only_layers") or []
    moe_count = sum(1 for i in range(layers) if i not in mlp_only and (i + 1) % step == 0)
    shared_inter = _opt(cfg, "shared_expert_intermediate_size", 0, where) if mt == "qwen2_moe" else 0
    return ModelSpec(
        arch=mt,
        head_dim=head_dim,
        intermediate=_opt(cfg, "intermediate_size", 0, where),
        dense_layers=layers - moe_count,
        n_routed_experts=_need(cfg, "num_experts", where),
        n_shared_experts=1 if shared_inter else 0,
        experts_per_token=_need(cfg, "num_experts_per_tok", where),
        moe_intermediate=_need(cfg, "moe_intermediate_size", where),
        shared_intermediate=shared_inter,
        qkv_bias=(mt == "qwen2_moe"),
        qk_norm=(mt == "qwen3_moe"),
        **common,
    )


# model_type -> the reader for its family
_HF_READERS: dict[str, Callable[[dict, str, dict, str], ModelSpec]] = {
    "deepseek_v3": _hf_mla,
    "deepseek_v32": _hf_mla,
    "deepseek_v2": _hf_mla,
    "qwen2": _hf_dense,
    "llama": _hf_dense,
    "mixtral": _hf_mixtral,
    "qwen2_moe": _hf_qwen_moe,
    "qwen3_moe": _hf_qwen_moe,
}
SUPPORTED_TYPES = tuple(_HF_READERS)


def _hf_common(cfg: dict, name: str, where: str) -> dict:
    """The ModelSpec fields every supported model_type reads the same way."""
    hidden = _need(cfg, "hidden_size", where)
    layers = _need(cfg, "num_hidden_layers", where)
    heads = _need(cfg, "num_attention_heads", where)
    vocab = _need(cfg, "vocab_size", where)
    if heads == 0 or layers == 0 or hidden == 0:
        raise UserError(f"{where}: hidden_size, num_hidden_layers and num_attention_heads must be > 0")
    return dict(
        name=name,
        vocab=vocab,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=_opt(cfg, "num_key_value_heads", heads, where),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        max_position=_opt(cfg, "max_position_embeddings", 0, where),
    )


def from_hf_config(cfg: dict, name: str = "model", where: str = "config.json") -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json dict."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where}: expected a JSON object")
    if "dim" in cfg and "n_layers" in cfg:
        return from_deepseek_inference_config(cfg, name, where)
    mt = cfg.get("model_type")
    if mt is None:
        raise UserError(f"{where}: missing field 'model_type' (one of {', '.join(SUPPORTED_TYPES)})")
    if mt not in SUPPORTED_TYPES:
        raise UserError(f"{where}: field 'model_type' is '{mt}', not one of {', '.join(SUPPORTED_TYPES)}")
    return _HF_READERS[mt](cfg, mt, _hf_common(cfg, name, where), where)


def from_deepseek_inference_config(cfg: dict, name: str = "model", where: str = "config") -> ModelSpec:
    """DeepSeek's reference-inference config (deepseek-ai/DeepSeek-V3 inference/configs/*.json)."""
    dim = _need(cfg, "dim", where)
    n_heads = _need(cfg, "n_heads", where)
    layers = _need(cfg, "n_layers", where)
    nope = _need(cfg, "qk_nope_head_dim", where)
    rope = _need(cfg, "qk_rope_head_dim", where)
    n_shared = _opt(cfg, "n_shared_experts", 0, where)
    moe_inter = _need(cfg, "moe_inter_dim", where)
    # The 671B/V3.1 configs use the sigmoid score function (V3 family); 236B/16B are V2.
    arch = "deepseek_v3" if cfg.get("score_func") == "sigmoid" else "deepseek_v2"
    return ModelSpec(
        name=name,
        arch=arch,
        vocab=_need(cfg, "vocab_size", where),
        hidden=dim,
        layers=layers,
        heads=n_heads,
        kv_heads=n_heads,
        head_dim=nope + rope,
        intermediate=_need(cfg, "inter_dim", where),
        dense_layers=_opt(cfg, "n_dense_layers", 1, where),
        attention="mla",
        q_lora_rank=_opt(cfg, "q_lora_rank", 0, where),
        kv_lora_rank=_need(cfg, "kv_lora_rank", where),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        v_head_dim=_need(cfg, "v_head_dim", where),
        n_routed_experts=_need(cfg, "n_routed_experts", where),
        n_shared_experts=n_shared,
        experts_per_token=_need(cfg, "n_activated_experts", where),
        moe_intermediate=moe_inter,
        shared_intermediate=n_shared * moe_inter,
        mtp_layers=1 if arch == "deepseek_v3" else 0,
        max_position=0,
    )


def from_config_file(path: str | Path) -> ModelSpec:
    p = Path(path)
    if not p.exists():
        raise UserError(f"config file not found: {p}")
    try:
        cfg = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: not valid JSON ({exc})") from None
    return from_hf_config(cfg, name=p.stem, where=str(p))


# GGUF tensor name → component (llama.cpp naming, gguf-py constants.py TENSOR_NAMES)
def _gguf_component(tname: str, dense_layers: int) -> str:
    if tname.startswith("token_embd"):
        return "embedding"
    if tname.startswith("output.") or tname == "output":
        return "lm_head"
    if tname.startswith("output_norm"):
        return "other"
    parts = tname.split(".")
    if len(parts) >= 3 and parts[0] == "blk":
        kind = parts[2]
        if kind.startswith("attn_") and "norm" not in kind or kind in ("attn_q_a_norm", "attn_kv_a_norm"):
            return "attention"
        if kind.endswith("_exps") or kind.startswith("exp_probs"):
            return "routed_experts" if not kind.startswith("exp_probs") else "other"
        if kind.endswith("_shexp"):
            return "shared_experts"
        if kind in ("ffn_gate", "ffn_up", "ffn_down"):
            return "dense_mlp"
        if kind == "ffn_gate_inp":
            return "other"
    return "other"


class _GgufFields:
    """GGUF metadata by key; a missing required field is a UserError naming it."""

    def __init__(self, reader: Any, path: Path):
        self.reader = reader
        self.path = path

    def __call__(self, key: str, required: bool = True, default: Any = None) -> Any:
        import numpy as np

        f = self.reader.fields.get(key)
        if f is None:
            if required:
                raise UserError(f"{self.path}: missing GGUF metadata field '{key}'")
            return default
        try:
            return f.contents()
        except Exception:
            val = f.parts[f.data[0]]
            return val.tolist()[0] if isinstance(val, np.ndarray) and val.size == 1 else val

    def first_int(self, key: str, required: bool = True, default: Any = None) -> int:
        """A count that some architectures store per layer (a list): the first layer's."""
        v = self(key, required, default)
        return int(v[0] if isinstance(v, list) else v)

    def int_or_0(self, key: str) -> int:
        """An optional count; absent or empty reads as 0."""
        return int(self(key, False, 0) or 0)


@dataclass
class _GgufHeader:
    """What every supported architecture reads the same way: `{arch}.*` sizes and the tensor table."""

    arch: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    ctx: int
    n_exp: int
    n_used: int
    n_shared: int
    moe_inter: int
    dense: int
    tensor_names: set[str]
    comp_bytes: dict[str, int]
    file_type: Any

    def spec_fields(self, name: str) -> dict[str, Any]:
        """The ModelSpec fields both readers fill from the header alone."""
        return dict(
            name=name,
            vocab=int(self.vocab),
            hidden=self.hidden,
            layers=self.layers,
            heads=self.heads,
            dense_layers=self.dense,
            n_routed_experts=self.n_exp,
            experts_per_token=self.n_used,
            tie_embeddings="output.weight" not in self.tensor_names,
            max_position=self.ctx,
            gguf_component_bytes=self.comp_bytes,
            gguf_file_type=str(self.file_type) if self.file_type is not None else None,
        )


def _read_gguf_header(field: _GgufFields) -> _GgufHeader:
    a = field("general.architecture")
    layers = int(field(f"{a}.block_count"))
    hidden = int(field(f"{a}.embedding_length"))
    heads = field.first_int(f"{a}.attention.head_count")
    kv_heads = field.first_int(f"{a}.attention.head_count_kv", False, heads)
    ffn = field.first_int(f"{a}.feed_forward_length", False, 0)
    tokens = field.reader.fields.get("tokenizer.ggml.tokens")
    vocab = field(f"{a}.vocab_size", False, None)
    if vocab is None:
        vocab = len(tokens.data) if tokens is not None else 0
    ctx = int(field(f"{a}.context_length", False, 0))
    n_exp = field.int_or_0(f"{a}.expert_count")
    n_used = field.int_or_0(f"{a}.expert_used_count")
    n_shared = field.int_or_0(f"{a}.expert_shared_count")
    moe_inter = field.int_or_0(f"{a}.expert_feed_forward_length")
    dense = int(field(f"{a}.leading_dense_block_count", False, 0 if n_exp else layers) or 0)
    if not n_exp:
        dense = layers
    comp_bytes = {c: 0 for c in COMPONENTS}
    names = set()
    for t in field.reader.tensors:
        names.add(t.name)
        comp_bytes[_gguf_component(t.name, dense)] += int(t.n_bytes)
    return _GgufHeader(
        arch=a,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        ffn=ffn,
        vocab=vocab,
        ctx=ctx,
        n_exp=n_exp,
        n_used=n_used,
        n_shared=n_shared,
        moe_inter=moe_inter,
        dense=dense,
        tensor_names=names,
        comp_bytes=comp_bytes,
        file_type=field("general.file_type", False, None),
    )


def _gguf_mla(field: _GgufFields, h: _GgufHeader, name: str) -> ModelSpec:
    """deepseek2 (llama.cpp's name for V2 and V3): MLA sizes; the gating function tells V3 (sigmoid, 2) from V2."""
    a = h.arch
    kv_lora = int(field(f"{a}.attention.kv_lora_rank"))
    q_lora = field.int_or_0(f"{a}.attention.q_lora_rank")
    rope = int(field(f"{a}.rope.dimension_count"))
    key_mla = field(f"{a}.attention.key_length_mla", False, None)
    val_mla = field(f"{a}.attention.value_length_mla", False, None)
    if key_mla is None:
        key_mla = int(field(f"{a}.attention.key_length"))
        val_mla = int(field(f"{a}.attention.value_length"))
    return ModelSpec(
        arch="deepseek_v3" if field(f"{a}.expert_gating_func", False, 1) == 2 else "deepseek_v2",
        kv_heads=h.heads,
        head_dim=int(key_mla),
        intermediate=h.ffn,
        attention="mla",
        q_lora_rank=q_lora,
        kv_lora_rank=kv_lora,
        qk_nope_head_dim=int(key_mla) - rope,
        qk_rope_head_dim=rope,
        v_head_dim=int(val_mla),
        n_shared_experts=h.n_shared,
        moe_intermediate=h.moe_inter,
        shared_intermediate=h.n_shared * h.moe_inter,
        **h.spec_fields(name),
    )


def _gguf_gqa(field: _GgufFields, h: _GgufHeader, name: str) -> ModelSpec:
    """llama / qwen2 / qwen2moe / qwen3moe / mixtral: grouped-query attention, dense or MoE layers."""
    a = h.arch
    head_dim = int(field(f"{a}.attention.key_length", False, h.hidden // h.heads) or h.hidden // h.heads)
    shared_inter = field.int_or_0(f"{a}.expert_shared_feed_forward_length")
    return ModelSpec(
        arch=_GGUF_GQA_ARCHS[a],
        kv_heads=h.kv_heads,
        head_dim=head_dim,
        intermediate=h.ffn if not h.n_exp else 0,
        moe_intermediate=h.moe_inter or (h.ffn if h.n_exp else 0),
        n_shared_experts=1 if shared_inter else 0,
        shared_intermediate=shared_inter,
        qkv_bias="blk.0.attn_q.bias" in h.tensor_names,
        **h.spec_fields(name),
    )


# GGUF general.architecture -> ModelSpec arch, for the grouped-query-attention families
_GGUF_GQA_ARCHS = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "mixtral": "mixtral",
}


def from_gguf(path: str | Path) -> ModelSpec:
    """Read a GGUF header (metadata + tensor infos) with the `gguf` package; no weights are loaded
    beyond the memory map. Weight bytes per component come from the tensors themselves."""
    from gguf import GGUFReader

    p = Path(path)
    if not p.exists():
        raise UserError(f"GGUF file not found: {p}")
    try:
        reader = GGUFReader(str(p), "r")
    except Exception as exc:  # the gguf package raises ValueError/struct errors on bad files
        raise UserError(f"{p}: not a readable GGUF file ({exc})") from None
    field = _GgufFields(reader, p)
    h = _read_gguf_header(field)
    if h.arch == "deepseek2":
        return _gguf_mla(field, h, p.stem)
    if h.arch in _GGUF_GQA_ARCHS:
        return _gguf_gqa(field, h, p.stem)
    raise UserError(
        f"{p}: GGUF architecture '{h.arch}' is not supported (deepseek2, llama, qwen2, qwen2moe, qwen3moe, mixtral)"
    )


def load_model_spec(id_or_path: str) -> ModelSpec:
    """A catalog id (or alias), a config.json path, or a .gguf path."""
    from dsdeploy.catalog import load_catalog

    p = Path(id_or_path)
    if id_or_path.endswith(".gguf"):
        return from_gguf(p)
    if id_or_path.endswith(".json") or p.is_file():
        return from_config_file(p)
    if p.is_dir():
        if (p / "config.json").exists():
            return from_config_file(p / "config.json")
        raise UserError(f"{p}: directory has no config.json")
    cat = load_catalog()
    entry = cat.model(id_or_path)
    spec = from_hf_config(cat.model_config(entry.id), name=entry.id, where=f"catalog model {entry.id}")
    return replace(spec, name=entry.id)
