"""Convert a small Hugging Face DeepSeek-V2/V3 checkpoint folder to a llama.cpp GGUF file.

This is a torch-free re-implementation of the parts of llama.cpp's
``convert_hf_to_gguf.py`` (class ``DeepseekV2Model``) that a DeepSeek-V3 checkpoint
needs, written with the PyPI ``gguf`` package, ``numpy`` and a minimal safetensors
reader. It exists so the project can build and ship its own tiny model without the
llama.cpp source tree.

What it does, following the upstream converter:

* architecture ``deepseek2``; MLA is written the way llama.cpp's absorbed-MLA path
  expects it: ``head_count_kv = 1``, ``key_length = kv_lora_rank + qk_rope_head_dim``,
  ``value_length = kv_lora_rank``, plus ``key_length_mla = qk_nope + qk_rope`` and
  ``value_length_mla = v_head_dim``;
* ``kv_b_proj`` is split per head into ``attn_k_b`` (transposed, so it can multiply
  ``q_nope`` into the latent space) and ``attn_v_b``;
* the routed experts ``mlp.experts.{i}.{gate,up,down}_proj`` are stacked into the 3-D
  ``ffn_{gate,up,down}_exps`` tensors; shared experts become ``ffn_*_shexp``;
* ``scoring_func: sigmoid`` becomes ``expert_gating_func = 2`` (without it llama.cpp
  falls back to softmax routing and the logits are wrong);
  ``e_score_correction_bias`` becomes ``blk.N.exp_probs_b.bias``;
* the tokenizer (a byte-level BPE in ``tokenizer.json``) is written as a ``gpt2``
  tokenizer with pre-tokenizer ``gpt-2``; added special tokens are CONTROL tokens.

Only what the tiny model uses is supported: no YaRN rope scaling, no MTP layers, no
``q_lora_rank = None`` variants beyond writing ``attn_q``.

Output types: ``f32`` (exact; used by the logits cross-check), ``f16`` and ``q8_0``
(1-D tensors and the router ``ffn_gate_inp`` stay f32, as upstream does).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np

__all__ = ["convert_hf_to_gguf", "read_safetensors", "OUTTYPES"]

OUTTYPES = ("f32", "f16", "q8_0")

_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}


# --------------------------------------------------------------------------------------
# safetensors (numpy only, with bf16 support, which safetensors.numpy lacks)
# --------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file into float32/float16/int numpy arrays.

    BF16 tensors are widened to float32 exactly (bf16 is the top half of an f32).
    """
    raw = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = raw[base + start : base + end]
        dtype, shape = info["dtype"], tuple(info["shape"])
        if dtype == "BF16":
            u16 = np.frombuffer(buf, dtype="<u2").astype(np.uint32)
            arr = (u16 << 16).view(np.float32)
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: unsupported safetensors dtype {dtype} for {name}")
        out[name] = arr.reshape(shape).copy()
    return out


# --------------------------------------------------------------------------------------
# tensor name mapping (HF DeepseekV3 -> llama.cpp deepseek2)
# --------------------------------------------------------------------------------------

_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_a_proj.weight": "attn_q_a.weight",
    "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight",
    "self_attn.q_b_proj.weight": "attn_q_b.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
    "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
    "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
}
_GLOBAL_MAP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_EXPERT_RE = re.compile(r"^mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
_EXPERT_OUT = {
    "gate_proj": "ffn_gate_exps.weight",
    "up_proj": "ffn_up_exps.weight",
    "down_proj": "ffn_down_exps.weight",
}


def _map_tensors(hp: dict, weights: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(gguf_name, float32 array)`` in llama.cpp naming, experts merged, kv_b split."""
    n_layer = hp["num_hidden_layers"]
    n_head = hp["num_attention_heads"]
    nope, v_dim = hp["qk_nope_head_dim"], hp["v_head_dim"]
    n_exp = hp.get("n_routed_experts") or 0
    experts: dict[int, dict[str, dict[int, np.ndarray]]] = {}
    used: set[str] = set()

    for name in sorted(weights, key=_sort_key):
        arr = np.asarray(weights[name], dtype=np.float32)
        if name in _GLOBAL_MAP:
            if name == "lm_head.weight" and hp.get("tie_word_embeddings"):
                used.add(name)
                continue
            used.add(name)
            yield _GLOBAL_MAP[name], arr
            continue
        m = _LAYER_RE.match(name)
        if not m:
            continue
        bid, rest = int(m.group(1)), m.group(2)
        if bid >= n_layer:  # MTP / next-n layers: skipped, as upstream does
            used.add(name)
            continue
        if (em := _EXPERT_RE.match(rest)) is not None:
            experts.setdefault(bid, {}).setdefault(em.group(2), {})[int(em.group(1))] = arr
            used.add(name)
            layer = experts[bid]
            if all(len(layer.get(w, {})) == n_exp for w in _EXPERT_OUT):
                for w, gname in _EXPERT_OUT.items():
                    yield f"blk.{bid}.{gname}", np.stack([layer[w][i] for i in range(n_exp)], axis=0)
                del experts[bid]
            continue
        if rest == "self_attn.kv_b_proj.weight":
            # [n_head*(nope+v), kv_lora] -> per head [nope+v, kv_lora]
            assert arr.shape[0] == n_head * (nope + v_dim), arr.shape
            kv_b = arr.reshape(n_head, nope + v_dim, arr.shape[-1])
            k_b, v_b = kv_b[:, :nope, :], kv_b[:, nope:, :]
            used.add(name)
            yield f"blk.{bid}.attn_k_b.weight", np.ascontiguousarray(k_b.transpose(0, 2, 1))
            yield f"blk.{bid}.attn_v_b.weight", np.ascontiguousarray(v_b)
            continue
        if rest in _LAYER_MAP:
            used.add(name)
            yield f"blk.{bid}.{_LAYER_MAP[rest]}", arr
            continue
    if experts:
        raise ValueError(f"incomplete expert sets in layers {sorted(experts)}")
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"tensors not converted: {unused[:8]}{'...' if len(unused) > 8 else ''}")


def _sort_key(name: str) -> tuple:
    m = _LAYER_RE.match(name)
    if not m:
        return (0 if "embed" in name else 2, 0, name)
    return (1, int(m.group(1)), m.group(2))


# --------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------


def _rope_theta(hp: dict) -> float:
    if "rope_theta" in hp:
        return float(hp["rope_theta"])
    rp = hp.get("rope_parameters") or {}
    return float(rp.get("rope_theta", 10000.0))


def _write_params(w: gguf.GGUFWriter, hp: dict, outtype: str) -> None:
    rs = hp.get("rope_scaling") or {}
    rp = hp.get("rope_parameters") or {}
    for d in (rs, rp):
        if d.get("rope_type", d.get("type", "default")) not in ("default", None):
            raise NotImplementedError(f"rope scaling {d} is not supported by this writer")
    scoring = hp.get("scoring_func")
    if scoring is None:
        raise ValueError(
            "config.json lacks 'scoring_func'; llama.cpp would fall back to softmax routing. "
            'Add "scoring_func": "sigmoid" for DeepSeek-V3.'
        )

    w.add_context_length(hp["max_position_embeddings"])
    w.add_embedding_length(hp["hidden_size"])
    w.add_block_count(hp["num_hidden_layers"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_head_count(hp["num_attention_heads"])
    w.add_head_count_kv(1)  # MLA is run as MQA over the compressed latent
    w.add_rope_freq_base(_rope_theta(hp))
    w.add_layer_norm_rms_eps(hp.get("rms_norm_eps", 1e-6))
    w.add_expert_count(hp["n_routed_experts"])
    w.add_expert_used_count(hp["num_experts_per_tok"])
    if hp.get("n_group") is not None:
        w.add_expert_group_count(hp["n_group"])
    if hp.get("topk_group") is not None:
        w.add_expert_group_used_count(hp["topk_group"])
    if scoring == "sigmoid":
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    elif scoring == "softmax":
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    else:
        raise ValueError(f"unsupported scoring_func {scoring!r}")
    w.add_file_type(_FILE_TYPES[outtype])

    kv_lora = hp["kv_lora_rank"]
    w.add_leading_dense_block_count(hp.get("first_k_dense_replace", 0))
    w.add_vocab_size(hp["vocab_size"])
    if hp.get("q_lora_rank") is not None:
        w.add_q_lora_rank(hp["q_lora_rank"])
    w.add_kv_lora_rank(kv_lora)
    w.add_key_length(kv_lora + hp["qk_rope_head_dim"])
    w.add_value_length(kv_lora)
    w.add_key_length_mla(hp["qk_nope_head_dim"] + hp["qk_rope_head_dim"])
    w.add_value_length_mla(hp["v_head_dim"])
    w.add_expert_feed_forward_length(hp["moe_intermediate_size"])
    w.add_expert_shared_count(hp.get("n_shared_experts", 0))
    if hp.get("routed_scaling_factor") is not None:
        w.add_expert_weights_scale(float(hp["routed_scaling_factor"]))
    if hp.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(hp["qk_rope_head_dim"])
    if outtype == "q8_0":
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_vocab(w: gguf.GGUFWriter, hf_dir: Path, vocab_size: int) -> None:
    tok = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = tok["model"]
    if model.get("type") != "BPE":
        raise ValueError("only byte-level BPE tokenizers are supported")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in tok.get("added_tokens", [])}
    for content, t in added.items():
        vocab[content] = t["id"]
    rev = {i: s for s, i in vocab.items()}
    if max(rev) >= vocab_size:
        raise ValueError(f"tokenizer id {max(rev)} >= vocab_size {vocab_size}")
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in rev:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        s = rev[i]
        tokens.append(s)
        if s in added:
            types.append(gguf.TokenType.CONTROL if added[s].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)

    cfg_path = hf_dir / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}

    def tok_id(key: str) -> int | None:
        v = tcfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        return vocab.get(v) if v is not None else None

    if (tid := tok_id("bos_token")) is not None:
        w.add_bos_token_id(tid)
    if (tid := tok_id("eos_token")) is not None:
        w.add_eos_token_id(tid)
    if (tid := tok_id("pad_token")) is not None:
        w.add_pad_token_id(tid)
    w.add_add_bos_token(bool(tcfg.get("add_bos_token", True)))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
    template = tcfg.get("chat_template")
    if not template and (hf_dir / "chat_template.jinja").is_file():  # transformers 5 layout
        template = (hf_dir / "chat_template.jinja").read_text(encoding="utf-8")
    if template:
        w.add_chat_template(template)


# --------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------


def _encode(name: str, arr: np.ndarray, outtype: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType | None]:
    keep_f32 = arr.ndim <= 1 or name.endswith("ffn_gate_inp.weight")
    if outtype == "f32" or keep_f32:
        return arr.astype(np.float32), None
    if outtype == "f16":
        return arr.astype(np.float16), None
    if outtype == "q8_0":
        if arr.shape[-1] % 32:
            return arr.astype(np.float16), None
        q = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        return q, gguf.GGMLQuantizationType.Q8_0
    raise ValueError(f"outtype must be one of {OUTTYPES}, got {outtype!r}")


def convert_hf_to_gguf(
    hf_dir: str | Path,
    out_path: str | Path,
    *,
    outtype: str = "f32",
    name: str | None = None,
    extra_kv: dict[str, str] | None = None,
) -> Path:
    """Write ``out_path`` (a ``deepseek2`` GGUF) from the HF folder ``hf_dir``.

    ``hf_dir`` must hold ``config.json`` (DeepseekV2/V3, with ``scoring_func``),
    ``model.safetensors`` (f32/f16/bf16, per-expert tensor names as written by
    ``save_pretrained``), ``tokenizer.json`` (byte-level BPE) and optionally
    ``tokenizer_config.json`` (special tokens, chat template).

    ``outtype`` is ``"f32"``, ``"f16"`` or ``"q8_0"``. ``extra_kv`` adds string
    metadata (e.g. provenance). Returns the output path.
    """
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype must be one of {OUTTYPES}, got {outtype!r}")
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    hp = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    arch_names = hp.get("architectures") or []
    if not any(a in ("DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM") for a in arch_names):
        raise ValueError(f"not a DeepSeek V2/V3 checkpoint: architectures={arch_names}")

    weights = read_safetensors(hf_dir / "model.safetensors")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out_path), arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.DEEPSEEK2])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name or hf_dir.name)
    _write_params(w, hp, outtype)
    _write_vocab(w, hf_dir, hp["vocab_size"])
    for k, v in (extra_kv or {}).items():
        w.add_string(k, v)

    for gname, arr in _map_tensors(hp, weights):
        data, qtype = _encode(gname, arr, outtype)
        if qtype is None:
            w.add_tensor(gname, data)
        else:
            w.add_tensor(gname, data, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out_path
