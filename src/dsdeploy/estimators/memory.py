"""Memory plan: what each device holds, whether it fits, and how many tokens of KV cache remain.

Pure functions: they take a `Deployment` and a workload, and return a `MemoryPlan`. Units: bytes.

Sources and formulas
- Weight bytes = parameters per tensor class × bits per weight ÷ 8 (bpw per format in
  catalog/data/formats.toml, each with its source), or, for a GGUF, the tensors' own byte sizes.
- Sharding (engine-neutral, data/reference/measurements/SCHEMA.md "Parallelism"): attention is split over tp and replicated over
  dp_attention groups; routed experts are split over all GPUs of a pipeline stage (tp × dp_attention,
  whether by EP or by tensor sharding); dense and shared MLPs are split over tp × dp_attention
  (SGLang/TRT-LLM run the MLP as TP over the whole group when attention is data-parallel);
  embedding/lm_head are vocab-parallel over tp and live on the first/last stage with pp.
- MLA KV cache: the latent (kv_lora + rope) has one head, so every TP rank holds a full copy; DP
  attention groups each hold their own requests' latents (SGLang DP-attention blog, 2024-12; vLLM
  MLA backend). GQA KV is split over min(tp, kv_heads) ranks.
- Engine memory policy: vLLM's `gpu_memory_utilization` and SGLang's `mem_fraction_static` are
  fractions of total device memory that weights + activations + KV must fit in (engines.toml);
  llama.cpp places weights explicitly (-ngl, -ot exps=CPU) and needs everything to fit the device.
- Activations: one forward pass of `max_batched_tokens` (vLLM's profile run does exactly this):
  T × 2 B × (4·hidden + 3·q_width/tp + 3·ffn_width/tp) + logits min(T, seqs) × vocab/tp × 4 B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from dsdeploy.catalog.schema import Accelerator
from dsdeploy.specs.deployment import Deployment
from dsdeploy.specs.model import COMPONENTS

GIB = 1024**3
GB = 1e9
MIB = 1024**2
HOST_RESERVE_GB = 8.0  # OS + runtime on a CPU host (estimate, unconfirmed)
HOST_RESERVE_SOURCE = "estimate: OS, page tables and runtime on the host (unconfirmed)"
# Share of unified memory the GPU may wire when the catalog entry gives none: macOS's default GPU
# wired limit is about three quarters of RAM (UNCONFIRMED; the M3 Ultra entry's 448/512 GB raised
# limit is sourced in hardware.toml). The plan says when this default was used.
DEFAULT_UNIFIED_FRACTION = 0.75

Binding = Literal["weights", "kv", "none"]  # what limits the plan: weights do not fit, KV too small, nothing


@dataclass(frozen=True)
class Workload:
    input_len: int = 1024
    output_len: int = 1024
    concurrency: int = 1

    @property
    def tokens_per_request(self) -> int:
        return self.input_len + self.output_len


@dataclass
class DeviceMemory:
    name: str
    kind: Literal["accelerator", "host", "unified"]
    capacity_bytes: int
    usable_bytes: int  # capacity under the engine's memory policy
    weights_bytes: int
    kv_bytes: int  # KV held for the requested workload
    activation_bytes: int
    overhead_bytes: int
    kv_bytes_per_token: float  # per token of KV (this device's share)
    count: int = 1  # identical devices summarised by this row

    @property
    def static_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes + self.overhead_bytes

    @property
    def kv_space_bytes(self) -> int:
        return self.usable_bytes - self.static_bytes

    @property
    def free_bytes(self) -> int:
        return self.kv_space_bytes - self.kv_bytes

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "capacity_bytes": self.capacity_bytes,
            "usable_bytes": self.usable_bytes,
            "weights_bytes": self.weights_bytes,
            "kv_bytes": self.kv_bytes,
            "activation_bytes": self.activation_bytes,
            "overhead_bytes": self.overhead_bytes,
            "free_bytes": self.free_bytes,
        }


@dataclass
class MemoryPlan:
    fits: bool
    reason: str
    binding: Binding
    weights_bytes_total: int
    weights_by_component: dict[str, int]
    devices: list[DeviceMemory]
    kv_bytes_per_token: float  # whole model, one token, at the KV dtype
    kv_capacity_tokens: int
    max_concurrency: int
    gpu_layers: int | None = None  # layer-split: layers on the accelerators
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- weights
def weight_bytes_by_component(dep: Deployment) -> dict[str, int]:
    """Bytes per tensor class for the deployment's format (or the GGUF's own tensor sizes).

    With experts on the CPU and an engine that takes the accelerator-side tensors from the model's
    native checkpoint (`dep.gpu_weights`, e.g. KTransformers + SGLang), every class but the routed
    experts is sized at that format's bits per weight (sources in the catalog's engine entry)."""
    m = dep.model
    if m.gguf_component_bytes is not None:
        out = dict(m.gguf_component_bytes)
    else:
        params = m.params_by_component()
        out = {c: int(round(params[c] * dep.weights.bpw[c].value / 8)) for c in COMPONENTS}
    if dep.gpu_weights is not None:
        params = m.params_by_component()
        for c in COMPONENTS:
            if c != "routed_experts":
                out[c] = int(round(params[c] * dep.gpu_weights.bpw[c].value / 8))
    if dep.mtp and m.mtp_layers:
        # MTP module: one more MoE layer; only loaded when speculative decoding is on.
        expert_share = m.n_routed_experts * m.expert_params() / max(1, m.mtp_params())
        out["routed_experts"] += int(m.mtp_params() * expert_share * dep.weights.bpw["routed_experts"].value / 8)
        out["attention"] += int(m.mtp_params() * (1 - expert_share) * dep.weights.bpw["attention"].value / 8)
    return out


def activation_bytes(dep: Deployment, tp: int = 1) -> int:
    m = dep.model
    T = dep.engine.max_batched_tokens.value
    seqs = min(T, dep.engine.max_num_seqs.value)
    q_width = m.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim if m.attention == "mla" else m.head_dim)
    ffn_width = max(m.intermediate, m.experts_per_token * m.moe_intermediate + m.shared_intermediate)
    per_tok = 2 * (4 * m.hidden + 3 * q_width / tp + 3 * ffn_width / tp)
    return int(T * per_tok + seqs * m.vocab / tp * 4)


def _overhead(dep: Deployment, multi_device: bool) -> int:
    """Runtime overhead charged against the usable budget.

    explicit (llama.cpp): everything — context, compute buffers — must fit the device.
    fraction_of_total (vLLM, SGLang, TRT-LLM): the CUDA context and NCCL buffers are inside the
    budget (vLLM's profile counts them as non-torch memory), CUDA graphs are captured afterwards
    in the memory left outside it (vLLM gpu_worker.determine_available_memory)."""
    e = dep.engine
    gib = e.context_overhead_gib.value
    if e.policy == "explicit":
        gib += e.graph_overhead_gib.value
    if multi_device:
        gib += e.comm_buffers_gib.value
    return int(gib * GIB)


def memory_fraction(dep: Deployment) -> float:
    """Share of each device's memory the engine takes for weights, KV and activations: the
    catalog's memory_fraction for engines that take a fraction of the total (vLLM
    --gpu-memory-utilization, SGLang --mem-fraction-static; sources in engines.toml), else all."""
    if dep.engine.policy == "fraction_of_total" and dep.engine.memory_fraction is not None:
        return dep.engine.memory_fraction.value
    return 1.0


def _usable(dep: Deployment, capacity: int) -> int:
    return int(capacity * memory_fraction(dep))


def kv_bytes_per_token(dep: Deployment) -> float:
    return dep.model.kv_bytes_per_token(dep.kv.bytes_per_element.value)


def kv_tp_split(dep: Deployment) -> int:
    """Ways the KV cache of one token is split across a TP group: MLA keeps the whole latent on
    every rank (DeepSeek-V3 report §2.1.1: the latent is shared by all heads, so it cannot be split
    by head); GQA/MHA split by KV head, at most kv_heads ways (vLLM/SGLang replicate KV heads when
    TP exceeds them)."""
    if dep.model.attention == "mla":
        return 1
    return max(1, min(dep.par.tp, dep.model.kv_heads))


def host_capacity_bytes(dep: Deployment) -> int:
    return int((dep.dram_gb or 0) * GB)


# ---------------------------------------------------------------------------- plans
def plan_memory(dep: Deployment, wl: Workload) -> MemoryPlan:
    """Dispatch on placement."""
    W = weight_bytes_by_component(dep)
    fn = {
        "gpu": _plan_gpu,
        "experts-on-cpu": _plan_experts_on_cpu,
        "layer-split": _plan_layer_split,
        "cpu": _plan_cpu,
        "unified": _plan_unified,
    }[dep.placement]
    return fn(dep, wl, W)


def _finish(dep, wl, W, devices, kv_tok_total, kv_capacity_tokens, notes, gpu_layers=None, kv_groups=1) -> MemoryPlan:
    """`kv_groups`: sets of devices that each hold their own requests' KV (DP-attention groups ×
    replicas); a device holds 1/kv_groups of the requested tokens."""
    total = sum(W.values())
    need_tokens = wl.concurrency * wl.tokens_per_request
    worst_static = min(devices, key=lambda d: d.kv_space_bytes)
    binding: Binding
    if worst_static.kv_space_bytes < 0 or kv_capacity_tokens <= 0:
        short = -worst_static.kv_space_bytes
        fits, binding = False, "weights"
        reason = (
            f"does not fit: {worst_static.name} needs {worst_static.static_bytes / GB:,.1f} GB for weights, "
            f"activations and runtime overhead but only {worst_static.usable_bytes / GB:,.1f} GB is usable"
            f" ({short / GB:,.1f} GB short; total weights {total / GB:,.1f} GB)"
        )
        if kv_capacity_tokens <= 0 and worst_static.kv_space_bytes >= 0:
            reason = f"does not fit: no memory left for the KV cache on {worst_static.name}"
        kv_capacity_tokens = max(0, kv_capacity_tokens)
    elif kv_capacity_tokens < need_tokens:
        fits, binding = False, "kv"
        reason = (
            f"weights fit, but the KV cache holds {kv_capacity_tokens:,} tokens: "
            f"{kv_capacity_tokens // max(1, wl.tokens_per_request)} requests of {wl.tokens_per_request:,} tokens, "
            f"fewer than the {wl.concurrency} requested"
        )
    else:
        fits, binding = True, "none"
        reason = (
            f"fits: {total / GB:,.1f} GB of weights; KV cache for {kv_capacity_tokens:,} tokens "
            f"({kv_capacity_tokens // max(1, wl.tokens_per_request)} concurrent requests of {wl.tokens_per_request:,} tokens)"
        )
    for d in devices:
        share = d.kv_bytes_per_token
        d.kv_bytes = int(min(need_tokens, max(kv_capacity_tokens, 0)) / kv_groups * share)
    return MemoryPlan(
        fits=fits,
        reason=reason,
        binding=binding,
        weights_bytes_total=total,
        weights_by_component=W,
        devices=devices,
        kv_bytes_per_token=kv_tok_total,
        kv_capacity_tokens=int(max(0, kv_capacity_tokens)),
        max_concurrency=int(max(0, kv_capacity_tokens) // max(1, wl.tokens_per_request)),
        gpu_layers=gpu_layers,
        notes=notes,
    )


def accelerator_bytes(acc: Accelerator) -> int:
    """Bytes one accelerator really has: what its driver reports (`memory_visible_mib`, MiB) where
    the catalog states it, since engines size their weights and KV pools from that; else the
    vendor's figure in GB (1e9)."""
    if acc.memory_visible_mib is not None:
        return int(acc.memory_visible_mib.value * MIB)
    return int(acc.memory_gb.value * GB)


def _plan_gpu(dep: Deployment, wl: Workload, W: dict[str, int]) -> MemoryPlan:
    m, p = dep.model, dep.par
    stage_gpus = p.tp * p.dp_attention
    assert dep.accelerator is not None  # placement gpu has one (resolve_deployment)
    cap = accelerator_bytes(dep.accelerator)
    # per-device weights on the most loaded stage
    # the busiest stage: layers split as evenly as they go, so one stage holds ceil(layers / pp)
    layer_share = math.ceil(m.layers / p.pp) / m.layers
    emb_head = (W["embedding"] + W["lm_head"]) if p.pp == 1 else max(W["embedding"], W["lm_head"])
    w_dev = (
        W["attention"] * layer_share / p.tp
        + (W["dense_mlp"] + W["shared_experts"] + W["routed_experts"]) * layer_share / stage_gpus
        + emb_head / p.tp
        + W["other"] * layer_share
    )
    kv_tok = kv_bytes_per_token(dep)
    kv_dev_tok = kv_tok * layer_share / kv_tp_split(dep)  # each DP group holds its own requests
    act = activation_bytes(dep, p.tp)
    ovh = _overhead(dep, dep.devices > 1)
    usable = _usable(dep, cap)
    d = DeviceMemory(
        name=f"{dep.accelerator.id} (each)",
        kind="accelerator",
        capacity_bytes=cap,
        usable_bytes=usable,
        weights_bytes=int(w_dev),
        kv_bytes=0,
        activation_bytes=act,
        overhead_bytes=ovh,
        kv_bytes_per_token=kv_dev_tok,
        count=dep.devices,
    )
    per_group_tokens = d.kv_space_bytes / kv_dev_tok if d.kv_space_bytes > 0 else 0
    capacity = int(per_group_tokens) * p.dp_attention * dep.replicas
    notes = []
    if m.attention == "mla" and p.tp > 1:
        notes.append(f"MLA latent is replicated on all {p.tp} TP ranks (one KV head)")
    return _finish(dep, wl, W, [d], kv_tok, capacity, notes, kv_groups=p.dp_attention * dep.replicas)


def _host_device(dep: Deployment, weights: float, kv_tok: float, name: str = "host DRAM") -> DeviceMemory:
    cap = host_capacity_bytes(dep)
    usable = int(max(0, cap - HOST_RESERVE_GB * GB))
    return DeviceMemory(
        name=name,
        kind="host",
        capacity_bytes=cap,
        usable_bytes=usable,
        weights_bytes=int(weights),
        kv_bytes=0,
        activation_bytes=0,
        overhead_bytes=0,
        kv_bytes_per_token=kv_tok,
    )


def _plan_experts_on_cpu(dep: Deployment, wl: Workload, W: dict[str, int]) -> MemoryPlan:
    """GPU(s): attention, dense and shared MLPs, embeddings, KV; host DRAM: routed experts
    (llama.cpp `-ot exps=CPU`, KTransformers)."""
    gpus = max(1, dep.devices)
    assert dep.accelerator is not None  # placement experts-on-cpu has one (resolve_deployment)
    cap = accelerator_bytes(dep.accelerator)
    gpu_w = (W["attention"] + W["dense_mlp"] + W["shared_experts"] + W["embedding"] + W["lm_head"] + W["other"]) / gpus
    kv_tok = kv_bytes_per_token(dep)
    act = activation_bytes(dep, 1)
    ovh = _overhead(dep, gpus > 1)
    g = DeviceMemory(
        name=f"{dep.accelerator.id} (each)",
        kind="accelerator",
        capacity_bytes=cap,
        usable_bytes=_usable(dep, cap),
        weights_bytes=int(gpu_w),
        kv_bytes=0,
        activation_bytes=act,
        overhead_bytes=ovh,
        kv_bytes_per_token=kv_tok / gpus,
        count=gpus,
    )
    h = _host_device(dep, W["routed_experts"], 0.0)
    capacity = int(g.kv_space_bytes / g.kv_bytes_per_token) if g.kv_space_bytes > 0 else 0
    if h.kv_space_bytes < 0:
        capacity = 0
        notes = [f"routed experts need {W['routed_experts'] / GB:,.0f} GB of host memory"]
    else:
        notes = [f"routed experts ({W['routed_experts'] / GB:,.0f} GB) in host DRAM, read by the CPU each token"]
    return _finish(dep, wl, W, [g, h], kv_tok, capacity, notes)


def _plan_layer_split(dep: Deployment, wl: Workload, W: dict[str, int]) -> MemoryPlan:
    """llama.cpp -ngl N: whole layers on the accelerator(s), the rest (and their KV) on the host.

    We offload as many layers as fit after the KV for the requested workload, like a user tuning -ngl."""
    m = dep.model
    gpus = max(1, dep.devices)
    assert dep.accelerator is not None  # placement layer-split has one (resolve_deployment)
    cap = accelerator_bytes(dep.accelerator)
    kv_tok = kv_bytes_per_token(dep)
    kv_tok_layer = kv_tok / m.layers
    layer_w = (W["attention"] + W["dense_mlp"] + W["shared_experts"] + W["routed_experts"] + W["other"]) / m.layers
    need_tokens = wl.concurrency * wl.tokens_per_request
    act = activation_bytes(dep, 1)
    ovh = _overhead(dep, gpus > 1)
    usable = _usable(dep, cap)
    head_w = W["lm_head"]  # output layer offloaded with -ngl ≥ layers+1; embedding stays on host
    per_gpu_room = usable - act - ovh
    per_layer_need = layer_w + kv_tok_layer * need_tokens
    total_room = gpus * per_gpu_room - head_w
    n_gpu = int(max(0, min(m.layers, math.floor(total_room / per_layer_need)))) if per_layer_need > 0 else m.layers
    gpu_layers_each = n_gpu / gpus
    g = DeviceMemory(
        name=f"{dep.accelerator.id} (each)",
        kind="accelerator",
        capacity_bytes=cap,
        usable_bytes=usable,
        weights_bytes=int(gpu_layers_each * layer_w + (head_w / gpus if n_gpu else 0)),
        kv_bytes=0,
        activation_bytes=act,
        overhead_bytes=ovh,
        kv_bytes_per_token=kv_tok_layer * gpu_layers_each,
        count=gpus,
    )
    cpu_layers = m.layers - n_gpu
    h = _host_device(dep, cpu_layers * layer_w + W["embedding"] + (0 if n_gpu else head_w), kv_tok_layer * cpu_layers)
    devs = [g, h]
    caps = []
    for d in devs:
        if d.kv_bytes_per_token > 0:
            caps.append(d.kv_space_bytes / d.kv_bytes_per_token if d.kv_space_bytes > 0 else 0)
    capacity = int(min(caps)) if caps else 0
    notes = [
        f"{n_gpu} of {m.layers} layers on the accelerator{'s' if gpus > 1 else ''} (-ngl {n_gpu}), {cpu_layers} on the CPU"
    ]
    return _finish(dep, wl, W, devs, kv_tok, capacity, notes, gpu_layers=n_gpu)


def _plan_cpu(dep: Deployment, wl: Workload, W: dict[str, int]) -> MemoryPlan:
    kv_tok = kv_bytes_per_token(dep)
    total = sum(W.values())
    h = _host_device(dep, total, kv_tok)
    h.activation_bytes = activation_bytes(dep, 1)
    capacity = int(h.kv_space_bytes / kv_tok) if h.kv_space_bytes > 0 else 0
    return _finish(dep, wl, W, [h], kv_tok, capacity, [f"host reserve {HOST_RESERVE_GB:g} GB ({HOST_RESERVE_SOURCE})"])


def unified_wired_limit_mib(acc: Accelerator) -> int | None:
    """The macOS GPU wired-memory limit (`iogpu.wired_limit_mb`, MiB) that lets the GPU use the share
    of unified memory the plan counts as usable (the catalog's `max_unified_fraction`), or None when
    that share is no more than macOS's default (DEFAULT_UNIFIED_FRACTION): nothing to raise. Apple's
    "512 GB" of unified memory is 512 GiB, so the limit is fraction × memory_gb × 1024 MiB
    (https://ark.marianposaceanu.com/apple_silicon_gpu_memory_blog.html)."""
    frac = acc.max_unified_fraction.value if acc.max_unified_fraction else DEFAULT_UNIFIED_FRACTION
    if frac <= DEFAULT_UNIFIED_FRACTION:
        return None
    return int(frac * acc.memory_gb.value * 1024)


def _plan_unified(dep: Deployment, wl: Workload, W: dict[str, int]) -> MemoryPlan:
    acc = dep.accelerator
    assert acc is not None  # placement unified has one (resolve_deployment)
    n = max(1, dep.devices)
    cap = int(acc.memory_gb.value * GB)
    frac = acc.max_unified_fraction.value if acc.max_unified_fraction else DEFAULT_UNIFIED_FRACTION
    usable = int(cap * frac)
    kv_tok = kv_bytes_per_token(dep)
    d = DeviceMemory(
        name=f"{acc.id} (each)",
        kind="unified",
        capacity_bytes=cap,
        usable_bytes=usable,
        weights_bytes=int(sum(W.values()) / n),
        kv_bytes=0,
        activation_bytes=activation_bytes(dep, 1),
        overhead_bytes=_overhead(dep, False),
        kv_bytes_per_token=kv_tok / n,
        count=n,
    )
    capacity = int(d.kv_space_bytes / d.kv_bytes_per_token) if d.kv_space_bytes > 0 else 0
    notes = [
        f"GPU may wire {frac:.0%} of unified memory" + ("" if acc.max_unified_fraction else " (default assumption)")
    ]
    return _finish(dep, wl, W, [d], kv_tok, capacity, notes)


# Share of the GPU memory left free that KTransformers' --kt-num-gpu-experts should fill with
# experts: half, keeping the other half for a KV cache that longer prompts grow into. A choice, not
# a measured optimum (kvcache-ai's kt-kernel README: raise it while GPU memory allows).
GPU_EXPERT_SHARE = 0.5


def gpu_expert_slots(dep: Deployment, mem: MemoryPlan, share: float = GPU_EXPERT_SHARE) -> int:
    """Routed experts per MoE layer that fit in `share` of the memory the plan leaves free on the
    first accelerator (the plan already counts the GPU-side weights, `dep.gpu_weights` included)."""
    m = dep.model
    per_index = mem.weights_by_component["routed_experts"] / max(1, m.n_routed_experts)
    free = mem.devices[0].free_bytes
    if per_index <= 0 or free <= 0:
        return 0
    return int(min(m.n_routed_experts, math.floor(share * free / per_index)))


def static_memory_fraction(d: DeviceMemory, lo: float = 0.5, hi: float = 0.95) -> float:
    """SGLang's --mem-fraction-static for a device: everything but the plan's activations and
    runtime overhead, rounded down to a percent. Kept within [0.5, 0.95]: SGLang's own heuristic
    ranges 0.79-0.88 (engines.toml, sglang memory_fraction); below 0.5 or above 0.95 something in
    the plan is off, and the launch should not silently follow it."""
    frac = math.floor(100 * (d.capacity_bytes - d.activation_bytes - d.overhead_bytes) / d.capacity_bytes) / 100
    return min(hi, max(lo, frac))
