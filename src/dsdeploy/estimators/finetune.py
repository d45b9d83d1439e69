"""Fine-tuning memory, time and storage: pure functions over a `ModelSpec`. Units: bytes, FLOPs, s.

Formulas and where they come from (data/reference/finetune/notes.md is the repo copy of the notes):

- Model states (ZeRO paper, Rajbhandari et al. 2019, arXiv:1910.02054 §3): per parameter, weights w,
  gradients g, fp32 master m and optimizer moments o bytes. Mixed precision (bf16 + fp32 master,
  Adam): 2 + 2 + 4 + 8 = 16 B. Pure bf16 (HF Trainer with `torch_dtype=bfloat16`, no master copy):
  2 + 2 + 0 + 4 = 8 B (notes §1.1). fp32: 4 + 4 + 0 + 8 = 16 B. 8-bit Adam (bitsandbytes): o = 2 B.
  Per GPU with N data-parallel shards: DDP w+g+m+o; ZeRO-1 w+g+(m+o)/N; ZeRO-2 w+(g+m+o)/N; ZeRO-3
  and FSDP full shard (w+g+m+o)/N; FSDP hybrid shards inside a node only.
- ZeRO-3 gathers one module's parameters at a time: 2 bf16 buffers of the largest module (DeepSpeed
  0.19.8 `estimate_zero3_model_states_mem_needs`: 4·largest_layer bytes). With transformers ≥ 5 a
  DeepSeek layer's routed experts are one fused module (E·3·h·I_e parameters, 11.27B for V3), so the
  layout matters (notes §1.2, §4.4).
- Activations (Korthikanti et al. 2022, arXiv:2205.05198 §4 Table 2): `s·b·h·(34 + 5·a·s/h)` bytes per
  layer. Here the terms are counted per tensor so that MLA and MoE widths enter (notes §1.4): flash
  attention drops the `5·a·s/h` scores; DeepSeek has no dropout, so the masks drop out; the attention
  tensors q, k, v and the o_proj input take their real widths (MLA: a·(d_nope+d_rope) for q and k,
  a·d_v for v, ≈ 2.9× the `h` Korthikanti assumes for V3); the MLP stores its input, gate, up and
  the gated product (SwiGLU); a MoE layer stores that for k routed copies per token plus the shared
  experts, the dispatch buffers in and out (2·k·h each) and fp32 router logits (E). Full recompute
  (HF gradient checkpointing) keeps the 2·h-byte layer input per layer plus one layer's full set.
  Backward holds one layer's activation gradient and the fp32 logits gradient on top (measured on
  the tiny model with torch's saved-tensor hooks, docs/finetune-accuracy.md §2).
- Logits: `s·b·V·(2 + 4)` bytes, bf16 logits and the fp32 upcast for cross-entropy (notes §1.4);
  transformers < 4.45 kept fp32 logits in the outputs plus a shifted copy (LOGITS_MODES).
- LoRA (Hu et al. 2021): `r·(in + out)` per adapted matrix. PEFT 0.21 with transformers ≥ 5 retargets
  `gate_proj/up_proj/down_proj` onto the fused routed experts (`gate_up_proj` at rank 2r, one rank-r
  pair per expert: `2r·E·(h + 2·I_e)`, `down_proj`: `r·E·(I_e + h)`) and leaves the dense MLP and the
  shared experts without adapters (peft `utils/transformers_weight_conversion.py::_convert_peft_config_moe`,
  `tuners/lora/layer.py::ParamWrapper`; measured exact on the tiny model, tests/test_finetune_real.py).
- QLoRA (Dettmers et al. 2023, arXiv:2305.14314): NF4 weights 4 bit + double-quantised constants
  0.127 bit per parameter for the linear layers; embeddings, norms and lm_head stay unquantised and
  peft's `prepare_model_for_kbit_training` casts them to fp32.
- Expert parallel (notes §1.6.2): routed experts split over ep (and pp), the rest over tp (and pp);
  each group is data-parallel over the GPUs left. Megatron-LM keeps fp32 gradient buffers.
- GPU total × ALLOCATOR_RESERVE (calibrated, see the constant).
- FLOPs: 6·Ψ_active per token for full training (2 forward + 4 backward), attention 3× its forward
  FLOPs; frozen weights skip the weight-gradient matmul (4·Ψ_frozen); recompute adds one forward.
- Step time = FLOPs / (GPUs × peak × MFU). MFU band: dense from ms-swift's ZeRO-3 Qwen2.5-14B
  benchmark (row MS14: 10.56 s/it → 0.44) up to xtuner's Llama3-8B 0.66; MoE from ms-swift's
  Qwen3-30B-A3B rows (MS5 HF ZeRO-3 per-expert loop 91.2 s/it → 0.006; MS4 Megatron EP 9.6 s/it →
  0.054) to an assumed 0.30 for grouped-GEMM experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dsdeploy.specs.model import ModelSpec

GB = 1e9
GIB = 1024**3

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("mixed", "bf16", "fp32")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit")
SHARDINGS = (
    "ddp",
    "zero1",
    "zero2",
    "zero3",
    "zero3-offload-cpu",
    "zero3-offload-nvme",
    "fsdp-full",
    "fsdp-hybrid",
)
EXPERT_LAYOUTS = ("fused", "per-expert")

# bytes per parameter: weights, grads, fp32 master, optimizer moments (Adam m + v)
PRECISION_BYTES: dict[str, tuple[float, float, float, float]] = {
    "mixed": (2, 2, 4, 8),  # ZeRO paper §3: 2Ψ + 2Ψ + KΨ, K = 12
    "bf16": (2, 2, 0, 4),  # notes §1.1: pure bf16, 8 B/param
    "fp32": (4, 4, 0, 8),  # fp32 weights and grads, fp32 Adam moments
}
EIGHT_BIT_MOMENTS = 2.0  # bitsandbytes 8-bit Adam: 1 B each for m and v (notes §1.1)
LORA_BYTES_PER_PARAM = 16.0  # fp32 adapter (PEFT autocast_adapter_dtype) 4 + grad 4 + Adam 8
NF4_BITS = 4.0 + 0.127  # QLoRA §2: NF4 + double-quantised constants
LOGITS_BYTES = 2 + 4  # bf16 logits + fp32 upcast for cross-entropy (notes §1.4)
LOGITS_BYTES_FP32 = 4 + 4  # fp32 logits + the log-softmax cross-entropy saves for backward
# Bytes per logit element (tokens × vocab): (held through the forward, extra during backward).
# hf: transformers ≥ 4.45 upcasts inside the loss only (notes §1.4), backward adds the fp32 gradient.
# hf-legacy: transformers < 4.45 (e.g. Llama/Qwen code of 2023–24) returned `logits.float()` in the
# outputs, the loss made a shifted `.contiguous()` fp32 copy and log-softmax saved fp32: 2 + 4 + 4 + 4;
# backward holds two fp32 gradients. fused: chunked/fused cross-entropy (Liger, Unsloth) ≈ 0.
LOGITS_MODES: dict[str, tuple[float, float]] = {
    "hf": (LOGITS_BYTES, 4.0),
    "hf-legacy": (14.0, 8.0),
    "fused": (0.0, 0.0),
}
# fp32 training stores every activation in 4 bytes instead of 2 (the formulas above count bf16)
ACT_SCALE = {"mixed": 1.0, "bf16": 1.0, "fp32": 2.0}
RUNTIME_OVERHEAD_BYTES = int(1.0 * GIB)  # CUDA context + NCCL/allocator slack (estimate, unconfirmed)
RUNTIME_OVERHEAD_SOURCE = "estimate: CUDA context and communication buffers ≈ 1 GiB (unconfirmed)"
# The CUDA caching allocator reserves more than the tensors it holds (block rounding, fragmentation
# from variable-length batches); frameworks report max_memory_reserved. One factor on the GPU total,
# calibrated in-sample on data/reference/finetune/measurements.csv by bench/finetune_accuracy.py
# (it lifts rows within ±25 % from 29/47 to 36/47; leave-one-family-out results in
# docs/finetune-accuracy.md). Not applied to host RAM or to CPU runs.
ALLOCATOR_RESERVE = 1.10
ALLOCATOR_RESERVE_SOURCE = "calibrated: bench/finetune_accuracy.py on data/reference/finetune/measurements.csv"
# ZeRO-3 parameter prefetch keeps about two gathered modules in flight (DeepSpeed: 4·LL bytes in bf16)
ZERO3_GATHER_BUFFERS = 2

MFU_BANDS: dict[str, tuple[float, float, float]] = {
    # (low, central, high) and their sources
    "dense": (0.30, 0.44, 0.66),
    "moe": (0.006, 0.054, 0.30),
}
MFU_SOURCES = {
    "dense": "derived: ms-swift MS14 Qwen2.5-14B ZeRO-3 10.56 s/it on 8× A800 → 0.44; xtuner Llama3-8B 205 TFLOPs/312 → 0.66; low end assumed",
    "moe": "derived: ms-swift MS5 Qwen3-30B-A3B HF ZeRO-3 91.2 s/it → 0.006, MS4 Megatron EP 9.6 s/it → 0.054; 0.30 assumed for grouped-GEMM experts",
}


# ---------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class FinetuneSetup:
    method: str = "lora"  # full | lora | qlora
    precision: str = "mixed"  # mixed | bf16 | fp32
    optimizer: str = "adamw"  # adamw | adamw-8bit | paged-adamw-8bit
    sharding: str = "zero3"
    gpus_per_node: int = 8
    nodes: int = 1
    seq_len: int = 2048
    micro_batch: int = 1
    grad_accum: int = 1
    grad_ckpt: bool = True
    sp: int = 1  # sequence parallel degree (Ulysses / context parallel)
    tp: int = 1  # tensor parallel degree
    pp: int = 1  # pipeline stages
    ep: int = 1  # expert parallel degree
    lora_rank: int = 8
    lora_targets: tuple[str, ...] = ("all-linear",)
    flash_attention: bool = True
    expert_layout: str = "fused"  # fused (transformers >= 5) | per-expert (transformers < 5, Megatron)
    fp32_grads: bool = False  # Megatron-LM's fp32 gradient buffers
    logits: str = "hf"  # hf | hf-legacy | fused: how the loss materialises the logits (LOGITS_MODES)

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def dp(self) -> int:
        """Data-parallel (ZeRO/FSDP shard) ranks: GPUs not spent on tensor or pipeline parallelism.
        Sequence-parallel ranks shard ZeRO states too (DeepSpeed's seq-data-parallel group)."""
        return max(1, self.gpus // (self.tp * self.pp))

    @property
    def offload(self) -> str:
        return {"zero3-offload-cpu": "cpu", "zero3-offload-nvme": "nvme"}.get(self.sharding, "none")


def check_setup(s: FinetuneSetup) -> list[str]:
    """Everything wrong with a setup, as messages saying what to fix (empty when valid)."""
    errs: list[str] = []

    def one_of(name: str, val: str, allowed: tuple[str, ...]) -> None:
        if val not in allowed:
            errs.append(f"{name} '{val}' is not one of {', '.join(allowed)}")

    one_of("method", s.method, METHODS)
    one_of("precision", s.precision, PRECISIONS)
    one_of("optimizer", s.optimizer, OPTIMIZERS)
    one_of("expert layout", s.expert_layout, EXPERT_LAYOUTS)
    one_of("logits mode", s.logits, tuple(LOGITS_MODES))
    if s.sharding not in SHARDINGS:
        hint = (
            " (DeepSpeed ZeRO has stages 0–3; use zero3 or zero3-offload-cpu)" if s.sharding.startswith("zero") else ""
        )
        errs.append(f"sharding '{s.sharding}' is not one of {', '.join(SHARDINGS)}{hint}")
    for name, val in (
        ("GPUs per node", s.gpus_per_node),
        ("nodes", s.nodes),
        ("sequence length", s.seq_len),
        ("micro-batch", s.micro_batch),
        ("gradient accumulation", s.grad_accum),
        ("sequence parallel size", s.sp),
        ("tensor parallel size", s.tp),
        ("pipeline stages", s.pp),
        ("expert parallel size", s.ep),
    ):
        if val < 1:
            errs.append(f"{name} must be at least 1, got {val}")
    if s.method in ("lora", "qlora"):
        if s.lora_rank < 1:
            errs.append(f"LoRA rank must be at least 1, got {s.lora_rank}")
        if not s.lora_targets:
            errs.append("LoRA needs at least one target module (e.g. all-linear, q_proj, gate_proj)")
    if s.gpus >= 1 and s.tp >= 1 and s.pp >= 1 and s.gpus % (s.tp * s.pp):
        errs.append(f"tp × pp = {s.tp * s.pp} must divide the {s.gpus} GPUs")
    if s.sp > 1 and s.seq_len >= 1 and s.seq_len % s.sp:
        errs.append(f"sequence length {s.seq_len} must be a multiple of the sequence parallel size {s.sp}")
    if s.gpus >= 1 and s.sp > s.gpus:
        errs.append(f"sequence parallel size {s.sp} exceeds the {s.gpus} GPUs")
    return errs


# ---------------------------------------------------------------------------------- LoRA
ATTN_NAMES_MLA = ("q_a_proj", "q_b_proj", "q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")
ATTN_NAMES_GQA = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_NAMES = ("gate_proj", "up_proj", "down_proj")


def attention_linears(spec: ModelSpec) -> list[tuple[str, int, int]]:
    """(name, in, out) of one layer's attention projections, HF module names."""
    h = spec.hidden
    if spec.attention == "mla":
        qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
        q = (
            [("q_a_proj", h, spec.q_lora_rank), ("q_b_proj", spec.q_lora_rank, spec.heads * qk)]
            if spec.q_lora_rank
            else [("q_proj", h, spec.heads * qk)]
        )
        return q + [
            ("kv_a_proj_with_mqa", h, spec.kv_lora_rank + spec.qk_rope_head_dim),
            ("kv_b_proj", spec.kv_lora_rank, spec.heads * (spec.qk_nope_head_dim + spec.v_head_dim)),
            ("o_proj", spec.heads * spec.v_head_dim, h),
        ]
    d = spec.head_dim
    return [
        ("q_proj", h, spec.heads * d),
        ("k_proj", h, spec.kv_heads * d),
        ("v_proj", h, spec.kv_heads * d),
        ("o_proj", spec.heads * d, h),
    ]


def check_model_setup(spec: ModelSpec, s: FinetuneSetup) -> list[str]:
    """What is wrong with a setup for this model: expert parallelism that does not split the GPUs
    or the routed experts evenly, LoRA target modules the model does not have (PEFT refuses them:
    "Target modules ... not found")."""
    errs: list[str] = []
    if s.ep > 1 and s.gpus >= 1 and s.gpus % (s.ep * s.pp):
        errs.append(f"ep × pp = {s.ep * s.pp} must divide the {s.gpus} GPUs")
    if s.ep > 1 and not spec.is_moe:
        errs.append(f"expert parallelism (--ep {s.ep}) needs an MoE model; {spec.name} is dense")
    elif s.ep > 1 and spec.n_routed_experts % s.ep:
        errs.append(f"--ep {s.ep} must divide the model's {spec.n_routed_experts} routed experts")
    if s.method in ("lora", "qlora"):
        known = {n for n, _, _ in attention_linears(spec)} | set(MLP_NAMES) | ({"gate"} if spec.is_moe else set())
        unknown = sorted(set(s.lora_targets) - known - {"all-linear"})
        if unknown:
            errs.append(
                f"LoRA target module(s) {', '.join(unknown)} not in {spec.name}; it has {', '.join(sorted(known))} "
                "(or all-linear)"
            )
    return errs


def expand_targets(spec: ModelSpec, targets: tuple[str, ...]) -> frozenset[str]:
    """PEFT's `target_modules` names → the module names they hit. `all-linear` is every nn.Linear
    but the output head (peft `tuners_utils._maybe_include_all_linear_layers`); on a MoE model that
    includes the router `gate`."""
    names: set[str] = set()
    for t in targets:
        if t == "all-linear":
            names.update(n for n, _, _ in attention_linears(spec))
            names.update(MLP_NAMES)
            if spec.is_moe:
                names.add("gate")
        else:
            names.add(t)
    return frozenset(names)


@dataclass(frozen=True)
class LoraCount:
    trainable: int
    by_component: dict[str, int]
    fused_expert_remap: bool  # PEFT moved gate/up/down onto fused experts (and dropped dense/shared)
    notes: tuple[str, ...] = ()


def lora_trainable(spec: ModelSpec, rank: int, targets: tuple[str, ...], expert_layout: str = "fused") -> LoraCount:
    """Trainable LoRA parameters as PEFT 0.21 builds them (see module docstring)."""
    names = expand_targets(spec, targets)
    h, r = spec.hidden, rank
    comp = {"attention": 0, "dense_mlp": 0, "shared_experts": 0, "routed_experts": 0, "router": 0}
    comp["attention"] = spec.layers * sum(r * (i + o) for n, i, o in attention_linears(spec) if n in names)
    mlp_hit = names & set(MLP_NAMES)
    notes: list[str] = []
    fused = spec.is_moe and expert_layout == "fused" and bool(mlp_hit)

    def swiglu(width: int) -> int:  # gate/up: h→width, down: width→h
        return sum(r * (h + width) for n in MLP_NAMES if n in mlp_hit)

    if fused:
        e, ie = spec.n_routed_experts, spec.moe_intermediate
        per_layer = 0
        if mlp_hit & {"gate_proj", "up_proj"}:
            per_layer += 2 * r * e * (h + 2 * ie)  # fused gate_up_proj at rank 2r per expert
        if "down_proj" in mlp_hit:
            per_layer += r * e * (ie + h)
        comp["routed_experts"] = spec.moe_layers * per_layer
        notes.append(
            "PEFT 0.21 retargets gate_proj/up_proj/down_proj onto the fused routed experts (gate_up_proj at rank "
            f"{2 * r}) and leaves the {spec.dense_layers} dense-layer MLP(s) and the shared experts without adapters"
        )
    else:
        comp["dense_mlp"] = spec.dense_layers * swiglu(spec.intermediate)
        if spec.is_moe:
            comp["shared_experts"] = (
                spec.moe_layers * swiglu(spec.shared_intermediate) if spec.shared_intermediate else 0
            )
            comp["routed_experts"] = spec.moe_layers * spec.n_routed_experts * swiglu(spec.moe_intermediate)
    if "gate" in names and spec.is_moe:
        comp["router"] = spec.moe_layers * r * (h + spec.n_routed_experts)
    return LoraCount(sum(comp.values()), comp, fused, tuple(notes))


def lora_trainable_flat(spec: ModelSpec, rank: int, with_routed_experts: bool) -> int:
    """The notes' analytic R1 figures (Appendix A): r·(in+out) over attention, dense and shared MLPs,
    and optionally the routed experts with one rank-r pair per expert and per fused matrix
    (gate_up as one matrix h→2·I_e, down I_e→h): 63.2M / 2,496M for R1 at r = 8."""
    h, r = spec.hidden, rank
    attn = spec.layers * sum(r * (i + o) for _, i, o in attention_linears(spec))
    dense = spec.dense_layers * 3 * r * (h + spec.intermediate)
    shared = spec.moe_layers * 3 * r * (h + spec.shared_intermediate) if spec.shared_intermediate else 0
    total = attn + dense + shared
    if with_routed_experts and spec.is_moe:
        ie = spec.moe_intermediate
        total += spec.moe_layers * spec.n_routed_experts * (r * (h + 2 * ie) + r * (ie + h))
    return total


# ---------------------------------------------------------------------------------- model states
@dataclass(frozen=True)
class ModelStates:
    params_total: int
    params_trainable: int
    params_frozen: int
    gpu_bytes: int  # per GPU
    cpu_bytes_per_node: int
    nvme_bytes_per_node: int
    gather_bytes: int  # ZeRO-3/FSDP transient gathered parameters (included in gpu_bytes)
    largest_module_params: int
    breakdown: dict[str, int] = field(default_factory=dict)  # per GPU: weights, grads, master, optimizer


def largest_module_params(spec: ModelSpec, expert_layout: str = "fused") -> int:
    """The biggest single module ZeRO-3/FSDP gathers at once (params with recurse=False): the
    embedding or lm_head, a layer's fused routed experts (transformers ≥ 5), else a dense MLP matrix."""
    cands = [spec.vocab * spec.hidden]
    if spec.is_moe and expert_layout == "fused":
        cands.append(spec.n_routed_experts * spec.expert_params())
    if spec.dense_layers:
        cands.append(spec.hidden * spec.intermediate)
    cands.extend(i * o for _, i, o in attention_linears(spec))
    return max(cands)


def _weight_bytes(spec: ModelSpec, s: FinetuneSetup) -> float:
    """Bytes of all weights as held for training (before sharding)."""
    w = PRECISION_BYTES[s.precision][0]
    if s.method != "qlora":
        return spec.params_total * w
    comp = spec.params_by_component()
    # not quantised by bitsandbytes; peft's prepare_model_for_kbit_training (utils/other.py) then casts
    # every non-4-bit parameter to fp32 "for stability"
    kept = comp["embedding"] + comp["lm_head"] + comp["other"]
    linear = spec.params_total - kept
    return kept * 4 + linear * NF4_BITS / 8


def _state_bytes(spec: ModelSpec, s: FinetuneSetup, trainable: int) -> dict[str, float]:
    """Whole-model bytes of weights, grads, fp32 master and optimizer states (before sharding)."""
    w, g, m, o = PRECISION_BYTES[s.precision]
    if s.optimizer != "adamw":
        o = EIGHT_BIT_MOMENTS
    total = spec.params_total
    weights = float(_weight_bytes(spec, s))
    if s.fp32_grads:
        g = 4  # Megatron-LM accumulates and all-reduces gradients in fp32 (--accumulate-allreduce-grads-in-fp32)
    if s.method == "full":
        return {"weights": weights, "grads": g * total, "master": m * total, "optimizer": o * total}
    # adapters: fp32 param (counted in weights) + fp32 grad + Adam; 8-bit moments if asked
    a_o = 8.0 if s.optimizer == "adamw" else EIGHT_BIT_MOMENTS
    return {"weights": weights + 4 * trainable, "grads": 4.0 * trainable, "master": 0.0, "optimizer": a_o * trainable}


def _expert_share(
    spec: ModelSpec, s: FinetuneSetup, per: dict[str, float], trainable: int, lora: LoraCount | None
) -> dict[str, float]:
    """The routed experts' part of `per` when they form their own expert-parallel group (Megatron
    "MoE parallel folding", notes §1.6.2); zeros without expert parallelism."""
    if not (s.ep > 1 and spec.is_moe):
        return {k: 0.0 for k in per}
    routed = spec.params_by_component()["routed_experts"]
    if s.method == "full":
        share = routed / spec.params_total
        return {k: v * share for k, v in per.items()}
    lr = lora.by_component.get("routed_experts", 0) if lora else 0
    t_share = lr / trainable if trainable else 0.0
    w_routed = routed * (NF4_BITS / 8 if s.method == "qlora" else PRECISION_BYTES[s.precision][0])
    return {
        "weights": w_routed + 4 * lr,
        "grads": per["grads"] * t_share,
        "master": 0.0,
        "optimizer": per["optimizer"] * t_share,
    }


def _shard_divisors(s: FinetuneSetup, n: int, keys) -> dict[str, float]:
    """How many ways each state is sharded over `n` data-parallel ranks under `s.sharding`."""
    shard: dict[str, dict[str, float]] = {
        "ddp": {"weights": 1, "grads": 1, "master": 1, "optimizer": 1},
        "zero1": {"weights": 1, "grads": 1, "master": n, "optimizer": n},
        "zero2": {"weights": 1, "grads": n, "master": n, "optimizer": n},
    }
    if s.sharding in shard:
        return shard[s.sharding]
    if s.sharding == "fsdp-hybrid":
        return dict.fromkeys(keys, min(n, s.gpus_per_node))
    return dict.fromkeys(keys, n)


def _gather_bytes(spec: ModelSpec, s: FinetuneSetup, largest: int) -> int:
    """ZeRO-3 / FSDP gather the largest module whole, in the weights' own dtype: NF4 (packed in a
    bf16 storage container, bnb_4bit_quant_storage) under QLoRA, else bf16 or fp32."""
    if not (s.sharding.startswith("zero3") or s.sharding.startswith("fsdp")):
        return 0
    w_gather = NF4_BITS / 8 if s.method == "qlora" else (4 if s.precision == "fp32" else 2)
    return int(ZERO3_GATHER_BUFFERS * largest * w_gather / (s.tp if s.tp > 1 else 1))


def model_states(spec: ModelSpec, s: FinetuneSetup, lora: LoraCount | None = None) -> ModelStates:
    total = spec.params_total
    trainable = total if s.method == "full" else (lora.trainable if lora else 0)
    frozen = total - trainable if s.method != "full" else 0
    per = _state_bytes(spec, s, trainable)
    # Everything but the routed experts is split over tp and pp and data-parallel over gpus/(tp·pp);
    # the experts under expert parallelism over ep and pp, data-parallel over gpus/(ep·pp).
    ex = _expert_share(spec, s, per, trainable, lora)
    rest = {k: per[k] - ex[k] for k in per}
    d_rest = _shard_divisors(s, s.dp, per)
    d_ex = _shard_divisors(s, max(1, s.gpus // (s.ep * s.pp)), per)
    gpu = {k: rest[k] / (s.tp * s.pp) / d_rest[k] + ex[k] / (s.ep * s.pp) / d_ex[k] for k in per}
    ll = largest_module_params(spec, s.expert_layout)
    gather = _gather_bytes(spec, s, ll)
    cpu_node = nvme_node = 0.0
    if s.offload != "none":
        # DeepSpeed preset zero3_offload: params and optimizer states (master included) live off-GPU;
        # the GPU keeps the gathered working set and, for the trainable part, its grads until offload.
        per_node = sum(gpu.values()) * min(s.gpus_per_node, s.gpus)
        gpu = {k: 0.0 for k in gpu}
        if s.offload == "cpu":
            cpu_node = per_node
        else:
            nvme_node = per_node
    return ModelStates(
        params_total=total,
        params_trainable=trainable,
        params_frozen=frozen,
        gpu_bytes=int(sum(gpu.values())) + gather,
        cpu_bytes_per_node=int(cpu_node),
        nvme_bytes_per_node=int(nvme_node),
        gather_bytes=gather,
        largest_module_params=ll,
        breakdown={k: int(v) for k, v in gpu.items()} | {"gathered": gather},
    )


# ---------------------------------------------------------------------------------- activations
def attention_bytes_per_token(spec: ModelSpec, flash: bool, seq_len: int) -> float:
    """Stored attention activations per token per layer (bytes, bf16), Korthikanti's attention terms
    with real tensor widths: norm input, projection inputs, q, k, v, the o_proj input, and the score
    matrix (a·s elements, bf16 softmax output + 1-byte... dropped: no dropout) when not flash."""
    h = spec.hidden
    if spec.attention == "mla":
        qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
        elems = (
            h  # input to q_a / kv_a
            + spec.q_lora_rank  # q latent (norm input)
            + (spec.q_lora_rank if spec.q_lora_rank else 0)  # normed latent → q_b input
            + spec.kv_lora_rank
            + spec.qk_rope_head_dim  # kv_a output
            + spec.kv_lora_rank  # normed latent → kv_b input
            + 2 * spec.heads * qk  # q, k (MLA: 2.9× h for V3, notes §1.4)
            + spec.heads * spec.v_head_dim  # v
            + spec.heads * spec.v_head_dim  # attention output → o_proj input
        )
    else:
        d = spec.head_dim
        elems = h + spec.heads * d + 2 * spec.kv_heads * d + spec.heads * d
    b = 2.0 * elems + 2.0 * h  # + the pre-attention RMSNorm input
    if not flash:
        b += 2.0 * spec.heads * seq_len  # softmax output (Korthikanti's 5·a·s/h less the dropout parts)
    else:
        b += 4.0 * spec.heads  # flash-attention log-sum-exp, fp32
    return b


def mlp_bytes_per_token(spec: ModelSpec, dense: bool) -> float:
    """Stored MLP activations per token for a dense or MoE layer (bytes)."""
    h = spec.hidden

    def swiglu(width: int) -> float:  # input, gate out, up out, gated product
        return 2.0 * (h + 3 * width)

    b = 2.0 * h  # pre-MLP RMSNorm input
    if dense or not spec.is_moe:
        return b + swiglu(spec.intermediate)
    k = spec.experts_per_token
    b += k * swiglu(spec.moe_intermediate)  # each token's k routed copies
    b += 2 * (2.0 * k * h)  # dispatch buffers in and out (2·k·h elements each)
    b += 4.0 * spec.n_routed_experts  # router logits, fp32
    if spec.shared_intermediate:
        b += swiglu(spec.shared_intermediate)
    return b


@dataclass(frozen=True)
class Activations:
    tokens_per_gpu: int
    per_layer_full_bytes: float  # one layer, no recompute (mean over dense and MoE layers)
    stored_bytes: int  # what the whole forward keeps for backward
    transient_bytes: int  # the recomputed layer during backward (checkpointing)
    backward_bytes: int  # gradient of the layer being back-propagated + the fp32 logits gradient
    logits_bytes: int
    total_bytes: int


def activations(spec: ModelSpec, s: FinetuneSetup) -> Activations:
    """Activation memory per GPU for one micro-batch (module docstring: Korthikanti + corrections)."""
    tokens = s.seq_len * s.micro_batch
    tok = tokens / s.sp  # Ulysses/context parallel splits the sequence
    attn = attention_bytes_per_token(spec, s.flash_attention, s.seq_len)
    if not s.flash_attention and s.sp > 1:
        attn -= 2.0 * spec.heads * s.seq_len * (1 - 1 / s.sp)  # heads are split over SP ranks
    dense_l = spec.dense_layers if spec.is_moe else spec.layers
    moe_l = spec.layers - dense_l
    per_dense = (attn + mlp_bytes_per_token(spec, True)) / s.tp
    per_moe = (attn + mlp_bytes_per_token(spec, False)) / s.tp
    layers_here = spec.layers  # 1F1B: the first stage holds pp micro-batches of L/pp layers
    if s.grad_ckpt:
        stored = tok * 2.0 * spec.hidden * layers_here / s.tp
        transient = tok * max(per_dense if dense_l else 0.0, per_moe if moe_l else 0.0)
    else:
        stored = tok * (dense_l * per_dense + moe_l * per_moe)
        transient = 0.0
    scale = ACT_SCALE[s.precision]
    stored, transient = stored * scale, transient * scale
    held, back = LOGITS_MODES[s.logits]
    if s.precision == "fp32" and s.logits == "hf":
        held = LOGITS_BYTES_FP32
    logits = tok * spec.vocab * held / s.tp
    mean_layer = (dense_l * per_dense + moe_l * per_moe) / spec.layers * tok
    # backward: the activation gradient of the layer in flight is about as big as its activations,
    # and the loss hands back an fp32 gradient of the logits (measured on the tiny model with
    # torch's saved-tensor hooks: docs/finetune-accuracy.md "CPU run")
    backward = (
        tok * max(per_dense if dense_l else 0.0, per_moe if moe_l else 0.0) * scale + tok * spec.vocab * back / s.tp
    )
    return Activations(
        tokens_per_gpu=int(tok),
        per_layer_full_bytes=mean_layer * scale,
        stored_bytes=int(stored),
        transient_bytes=int(transient),
        backward_bytes=int(backward),
        logits_bytes=int(logits),
        total_bytes=int(stored + transient + backward + logits),
    )


# ---------------------------------------------------------------------------------- memory total
@dataclass(frozen=True)
class FinetuneMemory:
    states: ModelStates
    acts: Activations
    overhead_bytes: int
    gpu_bytes: int  # including the allocator reserve
    cpu_bytes_per_node: int
    nvme_bytes_per_node: int

    def to_dict(self) -> dict:
        return {
            "gpu_bytes": self.gpu_bytes,
            "gpu_model_states_bytes": self.states.gpu_bytes,
            "gpu_model_states_breakdown": self.states.breakdown,
            "gpu_activation_bytes": self.acts.stored_bytes + self.acts.transient_bytes + self.acts.backward_bytes,
            "gpu_logits_bytes": self.acts.logits_bytes,
            "gpu_overhead_bytes": self.overhead_bytes,
            "gpu_allocator_reserve_bytes": self.gpu_bytes
            - (self.states.gpu_bytes + self.acts.total_bytes + self.overhead_bytes),
            "cpu_bytes_per_node": self.cpu_bytes_per_node,
            "nvme_bytes_per_node": self.nvme_bytes_per_node,
            "tokens_per_gpu": self.acts.tokens_per_gpu,
            "largest_module_params": self.states.largest_module_params,
        }


def memory(
    spec: ModelSpec,
    s: FinetuneSetup,
    overhead_bytes: int = RUNTIME_OVERHEAD_BYTES,
    reserve_factor: float = ALLOCATOR_RESERVE,
) -> FinetuneMemory:
    """Peak memory per GPU: (model states + activations + logits + runtime) × the allocator's reserve."""
    lora = lora_trainable(spec, s.lora_rank, s.lora_targets, s.expert_layout) if s.method != "full" else None
    st = model_states(spec, s, lora)
    act = activations(spec, s)
    gpu = int((st.gpu_bytes + act.total_bytes + overhead_bytes) * reserve_factor)
    return FinetuneMemory(st, act, overhead_bytes, gpu, st.cpu_bytes_per_node, st.nvme_bytes_per_node)


# ---------------------------------------------------------------------------------- time
@dataclass(frozen=True)
class StepTime:
    flops_per_token: float
    tokens_per_step: int  # global
    seconds: float  # central MFU
    seconds_band: tuple[float, float]  # (fast: high MFU, slow: low MFU)
    tokens_per_s: float
    mfu: tuple[float, float, float]
    mfu_source: str
    offload_bytes_per_gpu: int  # PCIe traffic per step per GPU (both directions)
    offload_seconds: float
    nvme_bytes_per_node: int  # NVMe traffic per step per node
    nvme_seconds: float
    bound: str  # compute | pcie | nvme


def train_flops_per_token(spec: ModelSpec, s: FinetuneSetup, trainable_params: int) -> float:
    """6·Ψ_active for full training; frozen weights do forward + activation gradient only (4·Ψ);
    attention 3× forward; recompute adds one forward (2·Ψ + attention)."""
    active = spec.params_matmul_active
    attn_fwd = spec.attention_flops_prefill(s.seq_len) / s.seq_len
    if s.method == "full":
        lin = 6.0 * active
    else:
        lin = 4.0 * active + 6.0 * trainable_params
    f = lin + 3.0 * attn_fwd
    if s.grad_ckpt:
        f += 2.0 * active + attn_fwd
    return f


def step_time(
    spec: ModelSpec,
    s: FinetuneSetup,
    peak_flops: float,
    host_link_gbs: float | None,
    nvme_gbs_per_node: float | None,
    trainable_params: int,
) -> StepTime:
    """Seconds per optimizer step from FLOPs and MFU, and the offload traffic (ZeRO-Infinity paper,
    Rajbhandari et al. 2021, arXiv:2104.07857 §5: parameters gathered from host memory for forward and
    backward, gradients written back, optimizer step on the CPU)."""
    kind = "moe" if spec.is_moe else "dense"
    lo, mid, hi = MFU_BANDS[kind]
    tokens = s.seq_len * s.micro_batch * s.grad_accum * (s.dp // s.sp if s.dp >= s.sp else 1)
    fpt = train_flops_per_token(spec, s, trainable_params)
    total = fpt * tokens
    denom = s.gpus * peak_flops

    def secs(mfu: float) -> float:
        return total / (denom * mfu)

    offload = 0
    nvme = 0
    if s.offload != "none":
        n = s.dp
        p_shard = spec.params_total * 2 / n  # bf16 partition per GPU
        trainable_shard = (trainable_params if s.method != "full" else spec.params_total) / n
        # per micro-step: parameters host→device for forward and backward; gradients device→host
        grad_bytes = 2 if s.method == "full" else 4  # bf16 grads; LoRA adapters' grads are fp32
        offload = int(s.grad_accum * (2 * p_shard + grad_bytes * trainable_shard))
        if s.offload == "nvme":
            states = (4 + 8) * trainable_shard  # fp32 master + Adam moments read and written once per step
            nvme = int(min(s.gpus_per_node, s.gpus) * (2 * states + s.grad_accum * 2 * p_shard))
    off_s = offload / (host_link_gbs * GB) if offload and host_link_gbs else 0.0
    nvme_s = nvme / (nvme_gbs_per_node * GB) if nvme and nvme_gbs_per_node else 0.0
    comp = secs(mid)
    seconds = max(comp, off_s, nvme_s)
    bound = "compute" if seconds == comp else ("pcie" if seconds == off_s else "nvme")
    fast = max(secs(hi), off_s, nvme_s)
    slow = max(secs(lo), off_s, nvme_s)
    return StepTime(
        flops_per_token=fpt,
        tokens_per_step=tokens,
        seconds=seconds,
        seconds_band=(fast, slow),
        tokens_per_s=tokens / seconds if seconds else math.inf,
        mfu=(lo, mid, hi),
        mfu_source=MFU_SOURCES[kind],
        offload_bytes_per_gpu=offload,
        offload_seconds=off_s,
        nvme_bytes_per_node=nvme,
        nvme_seconds=nvme_s,
        bound=bound,
    )


# ---------------------------------------------------------------------------------- checkpoints
# Measured: bench/finetune_compression.py on the tiny model's tensors, 128 KiB records compressed one
# by one as ZFS does (docs/finetune-accuracy.md). Compressed size / original size; lz4 is ZFS's
# default compressor, zlib-6 ≈ ZFS gzip-6. "checkpoint" = fp32 master + Adam exp_avg + exp_avg_sq
# after 3 real AdamW steps (what a ZeRO/FSDP checkpoint holds).
COMPRESSION_MEASURED: dict[str, dict[str, float]] = {
    "bf16-weights": {"lz4": 1.000, "zlib-6": 0.796},
    "fp32-checkpoint": {"lz4": 0.905, "zlib-6": 0.827},
    "fp32-upcast-bf16": {"lz4": 0.653, "zlib-6": 0.475},
}
COMPRESSION_SOURCE = "measured: bench/finetune_compression.py on the tiny DeepSeek-V3 model (docs/finetune-accuracy.md)"


@dataclass(frozen=True)
class Checkpoint:
    bytes_total: int  # one full training checkpoint, all ranks together
    components: dict[str, int]
    export_bytes: int  # the bf16 (or adapter) weights alone, for serving
    write_seconds: float  # at the storage rate, all nodes writing in parallel
    write_gbs: float


def checkpoint(spec: ModelSpec, s: FinetuneSetup, trainable_params: int, write_gbs_per_node: float) -> Checkpoint:
    """A resumable checkpoint holds what the optimizer needs: fp32 master (or the weights themselves
    when there is none) and the Adam moments. DeepSpeed ZeRO writes `*_optim_states.pt` with the fp32
    partitions: 12 B/param mixed precision; ScienceOne measured 7.4 TB for R1 (row SO9), 12 × 671B =
    8.05 TB = 7.3 TiB."""
    w, _, m, o = PRECISION_BYTES[s.precision]
    if s.optimizer != "adamw":
        o = EIGHT_BIT_MOMENTS
    if s.method == "full":
        n = spec.params_total
        comps = {"master_or_weights": int((m or w) * n), "optimizer_moments": int(o * n)}
        export = int(2 * n)
    else:
        n = trainable_params
        a_o = 8.0 if s.optimizer == "adamw" else EIGHT_BIT_MOMENTS
        comps = {"adapter_fp32": int(4 * n), "optimizer_moments": int(a_o * n)}
        export = int(4 * n)
    total = sum(comps.values())
    rate = write_gbs_per_node * s.nodes
    return Checkpoint(total, comps, export, total / (rate * GB) if rate > 0 else math.inf, rate)
