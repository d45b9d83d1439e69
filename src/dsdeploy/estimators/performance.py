"""Step-time and serving model: TTFT, TPOT and throughput for any deployment the planner accepts.

A step (a prefill chunk or a decode step) on the busiest device costs

    max(compute time, memory-traffic time) + communication + one per-step overhead

- **Compute** is split by GEMM class, each at the efficiency its size allows: a GEMM of M rows
  (tokens per weight matrix) reaches eff(M) = eff_max · M / (M + m_half) of the dense peak for the
  dtype it runs in (tile quantisation and launch latency at small M; CUTLASS/cuBLAS tiles are
  64–256 rows). Dense GEMMs (attention projections, dense and shared MLPs, lm_head) see M = the
  step's tokens per attention group; routed-expert GEMMs see M = tokens × k ÷ experts touched, so
  a 1k-token prefill of a 256-expert model runs its experts at M ≈ 32 and an 8k one at M ≈ 256.
  That is what makes prefill cost grow ~4×, not 8×, from 1k to 8k prompts, and what carries one
  efficiency from R1 to an 8B dense distill. Attention FLOPs: ModelSpec (absorbed MLA in decode,
  non-absorbed causal in prefill, per prompt: chunks that pack several prompts do not attend
  across them).
- **Memory**: the device's dense weights, plus the routed experts actually touched by T tokens —
  E·(1−(1−k/E)^T) per MoE layer (each token picks k of E; DeepSeek's balanced routing makes this
  the right mean) — plus each sequence's KV (the MLA latent for DeepSeek), over bandwidth × bw_eff.
  The bandwidth is the spec scaled by how far the part's measured streaming bandwidth departs from
  a typical part's (`hbm_gbs`: MI300X streams 77 % of its spec where H100, H200 and B200 stream
  86–89 %), so an efficiency fitted on one part carries to another.
- **Compute dtype** actually run: the format's `compute` when the hardware has it (FP8 on Hopper,
  Blackwell, MI300X, Ada), else its fallback (A100 runs FP8 weights as W8A16 → BF16); CPUs use
  their AMX/AVX-512 rate as the engine's kernels do (`cpu_peak_tflops`).
- **Communication**, α + bytes/β per collective (Hockney's model): TP all-reduce twice per layer
  (ring: 2(n−1)/n × bytes), EP dispatch and combine (all-to-all of k × hidden per token, FP8), PP
  hand-offs. α and β come from the catalog's links: NVLink/XGMI/PCIe carry aiconfigurator's
  empirical 10 µs per collective; across nodes the collective is hierarchical (intra-node over
  the scale-up link, then the inter-node fabric's NCCL latency, ~20 µs on InfiniBand), so TP
  across nodes is always slower than TP inside one.
- **Overhead** is per step (scheduler, sampling, CUDA-graph replay: `step_overhead_us`) plus a
  latency per kernel launched (`kernel_us`: launch, ramp and tail of each kernel, even inside a
  CUDA graph) times the kernels the architecture runs per step (`step_kernels`: ~9 per dense GQA
  layer, +6 for MLA's extra projections, norms and absorbed BMMs, +6 for an MoE block's router,
  top-k, grouped GEMMs and shared expert). So an 8B dense model (32 × 9 = 288 kernels) pays a
  third of what a 61-layer MLA + MoE model (61 × 15 + 58 × 6 = 1,263) pays, and neither pays a
  per-layer constant fitted on the other.
- **Placements** (one function each, like memory.py): gpu, unified (SoC memory; EXO hops), cpu
  (DRAM bandwidth; sockets scale with a NUMA factor), experts-on-cpu and layer-split. In the last
  two a decode step runs the CPU part and the GPU part one after the other; a prefill chunk takes
  the faster of (the GPU computes everything, the CPU-resident weights streamed over the host
  link once per chunk: llama.cpp's large-batch offload, KTransformers' GPU prefill) and (the CPU
  computes its part with the kernels the engine uses: AMX or AVX-512).
- MTP speculative decoding: one draft token per step accepted with probability p; a step verifies
  2 tokens per sequence and yields 1 + p. Default p = 0.85 (DeepSeek-V3 report §5.4.3: "acceptance
  rate … between 85% and 90%").

Serving: continuous batching up to the KV capacity as the engine really sizes it (its memory
fraction of total or of free memory, engines.toml; requests hold input + output/2 tokens on
average), and the arrival process of the client:
- `steady`: a closed loop of c clients in steady state. ρ = (B − 1)·t_prefill / E2E (share of time
  the other clients' prefills take, chunked prefill interleaved with decode); TPOT = t_decode(B) / (1 − ρ);
  TTFT = t_prefill + ρ·t_prefill / (2(1 − ρ)) + one step (+ the per-request `request_ms`: HTTP,
  tokenisation, admission); solved by bisection.
- `burst`: all c requests start at once (`vllm bench serve --max-concurrency`, InferenceX): the
  prompts are prefilled together in chunks of max_batched_tokens; a request's TTFT is the time
  until its chunk is done (mean over the burst), and its decode shares the GPU with the rest of
  the burst's prefill.
- `waves`: the steady state of a benchmark client whose requests stay roughly in step (fixed
  nominal lengths): a wave's prompts arrive within WAVE_SPREAD of a cycle, and when prefilling
  them all takes longer than that, the mean request also waits half the excess.
- `rate`: open-loop arrivals at λ requests/s (M/D/1 wait for the prefill server).
Roles of a PD-disaggregated deployment: `prefill` (prompts only), `decode` (no prefill
interference; the first token comes from the prefill side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from dsdeploy.catalog.schema import Accelerator, Link
from dsdeploy.estimators.calibration import Calibration, GroupParams
from dsdeploy.estimators.memory import (
    MemoryPlan,
    Workload,
    kv_bytes_per_token,
    kv_tp_split,
    plan_memory,
    weight_bytes_by_component,
)
from dsdeploy.specs.deployment import Deployment

MTP_ACCEPTANCE = 0.85
MTP_SOURCE = "DeepSeek-V3 technical report §5.4.3 (second-token acceptance 85–90 %)"
NUMA_SCALING = 0.4  # a second socket adds 40 % (KTransformers V0.2 table: dual 12.2 vs single 8.73 tok/s)
DEFAULT_CPU = {"bw": 76.8, "tflops": 1.0}  # dual-channel DDR5-4800 desktop: 2 × 4800 × 8 B
# Pipeline hop between unified-memory boxes (EXO over Thunderbolt / 10–40 GbE): per-hop latency and
# bandwidth. UNCONFIRMED estimates: no measured EXO hop is in facts.md; Thunderbolt 5 signals at
# 80 Gb/s = 10 GB/s raw, we assume half of it achieved, plus ~50 µs of host networking per hop
# (facts.md §2b: "kernel-to-kernel ≈50 µs").
UNIFIED_HOP_LATENCY_S = 50e-6
UNIFIED_HOP_GBS = 5.0
# Host link when the accelerator entry names none: PCIe 4.0 x16, 31 GB/s per direction (facts.md §2a).
DEFAULT_HOST_LINK_GBS = 31.0
DEFAULT_HOST_LINK_US = 10.0  # as the catalog's PCIe entries (aiconfigurator's per-collective figure)
# DeepEP's normal kernels dispatch FP8 and combine BF16 (deepseek-ai/DeepEP README: "FP8 dispatching
# and BF16 combining"): bytes per hidden element of each all-to-all
EP_DISPATCH_BYTES = 1.0
EP_COMBINE_BYTES = 2.0
ARRIVALS = ("steady", "waves", "burst", "rate")
# `waves`: benchmark clients with fixed nominal lengths (vllm bench serve / InferenceX: random
# dataset, --random-range-ratio 0.8 draws lengths in [0.8 L, L]) keep their requests roughly in
# step: a wave's completions, hence the next wave's arrivals, spread over (1 − 0.8) of a cycle.
WAVE_SPREAD = 0.2
ROLES = ("aggregated", "prefill", "decode")


@dataclass
class StepCost:
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float  # per step + the kernels' launch latency (architecture-derived count)

    @property
    def total_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.comm_s + self.overhead_s

    @property
    def bound(self) -> str:
        if self.overhead_s + self.comm_s > max(self.compute_s, self.memory_s):
            return "latency"
        return "compute" if self.compute_s > self.memory_s else "memory"


@dataclass
class PerfPrediction:
    concurrency: int
    batch: int
    ttft_ms: float
    tpot_ms: float
    e2e_ms: float
    decode_tok_s_per_user: float
    output_tok_s_total: float
    prefill_tok_s: float
    band: float
    label: str
    bound: str
    notes: list[str] = field(default_factory=list)
    arrival: str = "steady"
    role: str = "aggregated"

    def to_dict(self) -> dict:
        r = lambda x: round(x, 3)  # noqa: E731
        return {
            "concurrency": self.concurrency,
            "batch": self.batch,
            "ttft_ms": r(self.ttft_ms),
            "tpot_ms": r(self.tpot_ms),
            "e2e_ms": r(self.e2e_ms),
            "decode_tok_s_per_user": r(self.decode_tok_s_per_user),
            "output_tok_s_total": r(self.output_tok_s_total),
            "prefill_tok_s": r(self.prefill_tok_s),
            "band": r(self.band),
            "label": self.label,
            "bound": self.bound,
            "arrival": self.arrival,
            "role": self.role,
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------ helpers
def experts_touched(n_experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts hit per MoE layer by `tokens` tokens choosing top_k of n_experts."""
    if n_experts <= 0 or tokens <= 0:
        return 0.0
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)


def _acc(dep: Deployment) -> Accelerator:
    """The deployment's accelerator; placements that reach here (gpu, unified, hybrid) have one."""
    if dep.accelerator is None:
        raise ValueError(f"placement '{dep.placement}' needs an accelerator")
    return dep.accelerator


def hw_class(dep: Deployment) -> str:
    """Calibration group class for a deployment."""
    if dep.placement in ("experts-on-cpu", "layer-split"):
        return "hybrid"
    if dep.placement == "cpu":
        return "cpu"
    if dep.placement == "unified":
        return "unified"
    base = "datacenter-gpu" if _acc(dep).hw_class == "datacenter-gpu" else "pcie-gpu"
    # ROCm and CUDA stacks differ in kernel maturity: AMD parts get their own group.
    return base + "-amd" if _acc(dep).vendor == "amd" else base


# The share of its spec bandwidth a typical datacenter GPU streams at: the median of the figures
# measured on the part itself in hardware.toml (`bandwidth_measured_gbs` not derived from a sibling:
# H100 0.887, B200 0.886, H200 0.865, MI300X 0.772). Fitted bandwidth efficiencies are fractions of
# spec on such a part; tests/test_performance.py checks the median against the catalog.
TYPICAL_STREAM_FRACTION = 0.875


def hbm_gbs(acc: Accelerator) -> float:
    """Memory bandwidth, GB/s, the model streams at before the engine's efficiency: the spec, scaled
    by how far this part's measured streaming bandwidth departs from a typical part's (an MI300X
    streams 0.772 of its 5.3 TB/s where a typical part streams 0.875: 4,674 GB/s spec-equivalent)."""
    spec = acc.bandwidth_gbs.value
    if acc.bandwidth_measured_gbs is None:
        return spec
    return acc.bandwidth_measured_gbs.value / TYPICAL_STREAM_FRACTION


def _acc_tflops(dep: Deployment) -> float:
    """Dense peak TFLOPS of one accelerator for the dtype the format actually computes in."""
    t = _acc(dep).tflops
    fmt = dep.weights
    for dt in (fmt.compute, fmt.fallback, "bf16", "fp16", "fp32"):
        if dt and dt in t:
            return t[dt].value
    return min(s.value for s in t.values())


def _cpu_bw(dep: Deployment) -> float:
    """Host DRAM bandwidth, GB/s: the stated DIMM config if any, else the CPU's catalog figure."""
    if dep.cpu is None:
        return DEFAULT_CPU["bw"]
    per_socket = dep.cpu.bandwidth_gbs.value
    if dep.dram is not None:
        ch = dep.dram.channels or dep.cpu.memory_channels.value
        per_socket = ch * dep.dram.mts * dep.dram.bytes_per_transfer / 1000
    return per_socket * (1 + NUMA_SCALING * (dep.cpu_sockets - 1))


VNNI_INT8_PER_FP32 = 4.0  # AVX-512 VNNI vpdpbusd: 64 int8 MACs per 512-bit op vs 16 FP32 FMAs
VNNI_SOURCE = "derived: Intel AVX-512 VNNI (vpdpbusd) does 4× the multiply-adds of an FP32 FMA per instruction"


def cpu_peak_tflops(dep: Deployment) -> float:
    """Per-deployment CPU matmul peak, TFLOPS/TOPS, for the kernels the engine actually runs.

    AMX kernels (SGLang's CPU backend; KTransformers with AMX INT4/INT8 weights) get the AMX rate;
    llama.cpp-family vector kernels get the AVX-512/AVX2 rate: FP32 FMA × 4 for int8 dot products
    (VNNI) and × 2 for BF16."""
    if dep.cpu is None:
        return DEFAULT_CPU["tflops"]
    t = dep.cpu.tflops
    want = "int8" if dep.weights.compute == "int8" else "bf16"
    amx = dep.cpu.matrix_isa == "amx" and (dep.engine.cpu_kernels == "amx" or dep.weights.id in ("amx-int4", "int8"))
    scale = 1 + NUMA_SCALING * (dep.cpu_sockets - 1)
    if amx or "fp32" not in t:
        for dt in (want, "bf16", "int8", "fp32"):
            if dt in t:
                return t[dt].value * scale
        return 1.0
    vec = t["fp32"].value * (VNNI_INT8_PER_FP32 if want == "int8" else 2.0)
    if want in t:
        vec = min(vec, t[want].value)
    return vec * scale


def gemm_eff(p: GroupParams, m: float) -> float:
    """Achieved fraction of peak of a GEMM with M rows: eff_max · M / (M + m_half)."""
    m = max(m, 1e-9)
    return p.compute_eff * m / (m + p.m_half)


KERNELS_DENSE_LAYER = 9  # rmsnorm, QKV GEMM, rope + KV write, attention, O GEMM, rmsnorm, gate-up GEMM, act, down GEMM
KERNELS_MLA_EXTRA = 6  # q_a/q_b and kv_a/kv_b GEMMs, two latent norms, absorbed BMMs (DeepSeek-V3 §2.1.1 MLA)
KERNELS_MOE_EXTRA = (
    6  # router GEMM, top-k, grouped gate-up, act, grouped down, combine (shared expert in the dense count)
)
KERNELS_SOURCE = "derived: count of the kernels one layer launches (vLLM/SGLang model code, with the usual fusions)"


def step_kernels(dep: Deployment) -> int:
    """Kernels one forward step launches (architecture-derived, see KERNELS_*)."""
    m = dep.model
    per_layer = KERNELS_DENSE_LAYER + (KERNELS_MLA_EXTRA if m.attention == "mla" else 0)
    return m.layers * per_layer + m.moe_layers * KERNELS_MOE_EXTRA


def _overhead(dep: Deployment, p: GroupParams) -> float:
    return (p.step_overhead_us + step_kernels(dep) * p.kernel_us) * 1e-6


def _alpha_s(link: Link) -> float:
    lat = link.collective_latency_us or link.latency_us
    return lat.value * 1e-6


def _allreduce_s(nbytes: float, n: int, link_gbs: float, alpha_s: float) -> float:
    """Ring all-reduce: α + 2(n−1)/n × bytes / β."""
    if n <= 1:
        return 0.0
    return alpha_s + 2 * (n - 1) / n * nbytes / (link_gbs * 1e9)


@dataclass(frozen=True)
class Work:
    """What one step does, before any efficiency: FLOPs by GEMM class with their M, and bytes."""

    dense_flops: float
    dense_m: float
    routed_flops: float
    routed_m: float
    attn_flops: float
    dense_bytes: float  # whole model, per class summed (sharding applied by each placement)
    routed_bytes: float  # routed experts touched by this step's tokens
    routed_all_bytes: float
    kv_bytes: float
    hidden_bytes: float
    prefill: bool = False


def step_work(dep: Deployment, tokens: float, seqs: float, context: float, prefill: bool) -> Work:
    """FLOPs and bytes of one step of `tokens` new tokens over `seqs` sequences (prefill: `seqs`
    prompts of tokens/seqs each, attending causally within themselves plus `context` earlier
    tokens; decode: one token each attending to `context`)."""
    m = dep.model
    W = weight_bytes_by_component(dep)
    routed_params = m.moe_layers * m.experts_per_token * m.expert_params()
    dense_params = m.params_matmul_active - routed_params
    if prefill:
        per = tokens / max(1.0, seqs)
        attn = seqs * m.attention_flops_prefill(int(per)) + (
            m.attention_flops_decode(int(context)) * tokens if context else 0.0
        )
    else:
        attn = m.attention_flops_decode(int(context)) * tokens
    touched = experts_touched(m.n_routed_experts, m.experts_per_token, tokens)
    routed_m = tokens * m.experts_per_token / max(float(m.experts_per_token), touched) if m.is_moe else 0.0
    frac = touched / m.n_routed_experts if m.n_routed_experts else 0.0
    dense_bytes = W["attention"] + W["dense_mlp"] + W["shared_experts"] + W["lm_head"] + W["other"]
    return Work(
        dense_flops=2.0 * dense_params * tokens,
        dense_m=tokens,
        routed_flops=2.0 * routed_params * tokens,
        routed_m=routed_m,
        attn_flops=attn,
        dense_bytes=dense_bytes,
        routed_bytes=W["routed_experts"] * min(1.0, frac),
        routed_all_bytes=W["routed_experts"],
        kv_bytes=seqs * context * kv_bytes_per_token(dep) if context else 0.0,
        hidden_bytes=tokens * m.hidden * 2,
        prefill=prefill,
    )


def _compute_s(
    w: Work, p: GroupParams, peak_flops: float, share: float = 1.0, dense_m: float | None = None, bw: float = 0.0
) -> float:
    """Seconds of compute for `share` of a step's FLOPs at `peak_flops`.

    Decode: every GEMM at eff_max (small-M decode kernels are GEMV-like; their time is the memory
    term). Prefill: each GEMM class at eff(M); a class is never slower than doing its FLOPs at
    eff_max plus streaming its weights once (`bw`, bytes/s; 0 = no such cap), which is what a
    tiny-M grouped GEMM does."""
    if not w.prefill:
        return share * (w.dense_flops + w.attn_flops + w.routed_flops) / (peak_flops * p.compute_eff)
    dm = w.dense_m if dense_m is None else dense_m
    full = peak_flops * p.compute_eff

    def cls(flops: float, m: float, nbytes: float) -> float:
        t = share * flops / (peak_flops * gemm_eff(p, m))
        if bw > 0:
            t = min(t, share * flops / full + share * nbytes / bw)
        return t

    t = cls(w.dense_flops, dm, w.dense_bytes) + share * w.attn_flops / (peak_flops * gemm_eff(p, dm))
    if w.routed_flops:
        t += cls(w.routed_flops, w.routed_m, w.routed_bytes)
    return t


# ------------------------------------------------------------------------------ placements
def _gpu_comm_s(dep: Deployment, w: Work, tokens: float) -> float:
    """TP all-reduces (hierarchical across nodes), EP all-to-all, PP hand-offs."""
    m, par = dep.model, dep.par
    up = dep.scale_up or dep.host_link
    if up is None:
        return 0.0
    a_up, b_up = _alpha_s(up), up.uni_gbs.value
    net = dep.scale_out if dep.nodes > 1 else None
    comm = 0.0
    if par.tp > 1:
        nbytes = w.hidden_bytes / par.dp_attention
        if par.tp > dep.per_node and net is not None:
            g = max(1, dep.per_node)
            inner = _allreduce_s(nbytes, g, b_up, a_up)
            outer = _allreduce_s(nbytes / g, par.tp // g, net.uni_gbs.value, _alpha_s(net))
            comm += 2 * m.layers * (inner + outer)
        else:
            comm += 2 * m.layers * _allreduce_s(nbytes, par.tp, b_up, a_up)
    stage = par.tp * par.dp_attention
    if m.is_moe and (par.ep > 1 or par.dp_attention > 1):
        n = max(par.ep, par.dp_attention)
        link = net if (net is not None and stage > dep.per_node) else up
        # each token's hidden state goes to its k experts' ranks, (n−1)/n of them remote, spread over n devices
        a2a = tokens * m.experts_per_token * m.hidden * (EP_DISPATCH_BYTES + EP_COMBINE_BYTES) * (n - 1) / n / n
        comm += m.moe_layers * (2 * _alpha_s(link) + a2a / (link.uni_gbs.value * 1e9))
    if par.pp > 1:
        hop = net or up
        comm += (par.pp - 1) * (_alpha_s(hop) + w.hidden_bytes / (hop.uni_gbs.value * 1e9))
    return comm


def _step_gpu(dep: Deployment, p: GroupParams, w: Work, tokens: float) -> StepCost:
    par = dep.par
    stage = par.tp * par.dp_attention
    W = weight_bytes_by_component(dep)
    bw = hbm_gbs(_acc(dep)) * 1e9 * p.bw_eff
    # bytes one device of each stage reads for the whole token; a token passes every stage in
    # turn, so the stages' times add up to the whole model's on one stage's devices
    dev_bytes = (
        W["attention"] / par.tp
        + (W["dense_mlp"] + W["shared_experts"]) / stage
        + W["lm_head"] / par.tp
        + W["other"]
        + w.kv_bytes / par.dp_attention / kv_tp_split(dep)
    )
    # routed experts stream through grouped-GEMM (fused MoE) kernels, a few rows per expert: they
    # reach a lower share of the bandwidth than dense GEMMs (moe_bw_eff)
    routed_s = w.routed_bytes / stage / (bw / p.bw_eff * p.moe_bw_eff)
    peak = _acc_tflops(dep) * 1e12
    compute = _compute_s(w, p, peak, 1.0 / stage, dense_m=w.dense_m / par.dp_attention, bw=bw)
    return StepCost(compute, dev_bytes / bw + routed_s, _gpu_comm_s(dep, w, tokens), _overhead(dep, p))


def _step_unified(dep: Deployment, p: GroupParams, w: Work, tokens: float) -> StepCost:
    n = max(1, dep.devices)
    bw = hbm_gbs(_acc(dep)) * 1e9 * p.bw_eff
    total = w.dense_bytes + w.routed_bytes + w.kv_bytes
    hop = 0.0
    if n > 1:  # EXO-style pipeline over the network: one hop per extra device
        hop = (n - 1) * (UNIFIED_HOP_LATENCY_S + w.hidden_bytes / (UNIFIED_HOP_GBS * 1e9))
    # pipeline: the token visits each device's share in turn → same sum as one device
    compute = _compute_s(w, p, _acc_tflops(dep) * 1e12, bw=bw)
    return StepCost(compute, total / bw, hop, _overhead(dep, p))


def _step_cpu(dep: Deployment, p: GroupParams, w: Work, tokens: float) -> StepCost:
    bw = _cpu_bw(dep) * 1e9 * p.bw_eff
    compute = _compute_s(w, p, cpu_peak_tflops(dep) * 1e12, bw=bw)
    return StepCost(compute, (w.dense_bytes + w.routed_bytes + w.kv_bytes) / bw, 0.0, _overhead(dep, p))


@dataclass(frozen=True)
class _Hybrid:
    gpus: int
    gpu_bw: float
    gpu_peak: float
    cpu_bw: float
    cpu_peak: float
    link_bps: float
    link_alpha_s: float


def _hybrid(dep: Deployment, p: GroupParams) -> _Hybrid:
    link = dep.host_link
    return _Hybrid(
        gpus=max(1, dep.devices),
        gpu_bw=hbm_gbs(_acc(dep)) * 1e9 * p.bw_eff,
        gpu_peak=_acc_tflops(dep) * 1e12,
        cpu_bw=_cpu_bw(dep) * 1e9 * p.bw_eff,
        cpu_peak=cpu_peak_tflops(dep) * 1e12,
        link_bps=(link.uni_gbs.value if link else DEFAULT_HOST_LINK_GBS) * 1e9,
        link_alpha_s=(link.latency_us.value if link else DEFAULT_HOST_LINK_US) * 1e-6,
    )


def _step_experts_on_cpu(dep: Deployment, p: GroupParams, w: Work, tokens: float, prefill: bool) -> StepCost:
    """GPU: attention, dense and shared MLPs, KV; CPU: the routed experts, one after the other.
    A prefill chunk may instead run entirely on the GPU with the touched experts streamed over
    the host link: the faster of the two."""
    h = _hybrid(dep, p)
    m = dep.model
    gpu_part = Work(
        w.dense_flops, w.dense_m, 0.0, 0.0, w.attn_flops, w.dense_bytes, 0.0, 0.0, w.kv_bytes, w.hidden_bytes, w.prefill
    )
    g = max(_compute_s(gpu_part, p, h.gpu_peak * h.gpus), (w.dense_bytes + w.kv_bytes) / h.gpus / h.gpu_bw)
    c_flops = w.routed_flops / (gemm_eff(p, w.routed_m) if prefill else p.compute_eff) / h.cpu_peak
    c = max(c_flops, w.routed_bytes / h.cpu_bw)
    xfer = 2 * m.moe_layers * w.hidden_bytes / h.link_bps
    split = g + c + xfer
    if prefill:
        streamed = max(
            _compute_s(w, p, h.gpu_peak * h.gpus), w.routed_bytes / h.link_bps + m.moe_layers * h.link_alpha_s
        )
        streamed = max(streamed, g)
        if streamed < split:
            return StepCost(0.0, streamed, 0.0, _overhead(dep, p))
    return StepCost(0.0, g + c, xfer, _overhead(dep, p))


def _step_layer_split(
    dep: Deployment, p: GroupParams, w: Work, tokens: float, prefill: bool, gpu_layers: int | None
) -> StepCost:
    """llama.cpp -ngl: the GPU layers, then the CPU layers (and the activations across PCIe). A
    prefill chunk may instead run every layer on the GPU with the CPU layers' weights streamed over
    the host link (llama.cpp offloads large batches): the faster of the two."""
    h = _hybrid(dep, p)
    m = dep.model
    f_gpu = (gpu_layers or 0) / m.layers
    all_bytes = w.dense_bytes + w.routed_bytes + w.kv_bytes
    flops_s_gpu = _compute_s(w, p, h.gpu_peak * h.gpus)
    g = max(flops_s_gpu * f_gpu, all_bytes * f_gpu / (h.gpu_bw * h.gpus))
    c = max(_compute_s(w, p, h.cpu_peak) * (1 - f_gpu), all_bytes * (1 - f_gpu) / h.cpu_bw)
    xfer = w.hidden_bytes / h.link_bps * (2 if 0 < f_gpu < 1 else 0)
    if prefill and f_gpu < 1:
        cpu_weights = (w.dense_bytes + w.routed_bytes) * (1 - f_gpu)
        streamed = max(flops_s_gpu, g + cpu_weights / h.link_bps)
        if streamed < g + c + xfer:
            return StepCost(0.0, streamed, 0.0, _overhead(dep, p))
    return StepCost(0.0, g + c, xfer, _overhead(dep, p))


def step_cost(
    dep: Deployment,
    p: GroupParams,
    tokens: float,
    seqs: float,
    context: float,
    prefill: bool,
    gpu_layers: int | None = None,
) -> StepCost:
    """Cost of one step processing `tokens` new tokens for `seqs` sequences whose mean attended
    context is `context` (prefill: `seqs` prompts share the chunk, each attending causally within
    itself plus `context`). Dispatches on placement, like memory.plan_memory."""
    w = step_work(dep, tokens, seqs, context, prefill)
    if dep.placement == "gpu":
        return _step_gpu(dep, p, w, tokens)
    if dep.placement == "unified":
        return _step_unified(dep, p, w, tokens)
    if dep.placement == "cpu":
        return _step_cpu(dep, p, w, tokens)
    if dep.placement == "experts-on-cpu":
        return _step_experts_on_cpu(dep, p, w, tokens, prefill)
    if gpu_layers is None:
        gpu_layers = plan_memory(dep, Workload(int(context) or 1, 1, max(1, int(seqs)))).gpu_layers
    return _step_layer_split(dep, p, w, tokens, prefill, gpu_layers)


def prefill_time(dep: Deployment, p: GroupParams, prompt_len: int, seqs: int = 1) -> tuple[float, str]:
    """Seconds to prefill `seqs` prompts of `prompt_len` tokens, in chunks of max_batched_tokens
    (several short prompts share a chunk; a long prompt spans several, each attending to the
    chunks before it)."""
    if prompt_len <= 0:
        return 0.0, "none"
    chunk = max(1, int(dep.engine.max_batched_tokens.value))
    gl = plan_memory(dep, Workload(prompt_len, 1, 1)).gpu_layers if dep.placement == "layer-split" else None
    if prompt_len >= chunk or seqs == 1:
        t, done, bound = 0.0, 0, "memory"
        while done < prompt_len:  # one prompt, chunk by chunk
            n = min(chunk, prompt_len - done)
            c = step_cost(dep, p, n, 1, done, prefill=True, gpu_layers=gl)
            t += c.total_s
            bound = c.bound
            done += n
        return t * seqs, bound
    per_chunk = max(1, chunk // prompt_len)  # whole prompts per chunk
    full, rest = divmod(seqs, per_chunk)
    t, bound = 0.0, "memory"
    for n_prompts, times in ((per_chunk, full), (rest, 1)):
        if n_prompts and times:
            c = step_cost(dep, p, n_prompts * prompt_len, n_prompts, 0, prefill=True, gpu_layers=gl)
            t += c.total_s * times
            bound = c.bound
    return t, bound


def decode_step(dep: Deployment, p: GroupParams, batch: int, context: float) -> StepCost:
    tokens = batch * (2 if dep.mtp else 1)
    gl = (
        plan_memory(dep, Workload(int(context) or 1, 1, max(1, batch))).gpu_layers
        if dep.placement == "layer-split"
        else None
    )
    return step_cost(dep, p, tokens, batch, context, prefill=False, gpu_layers=gl)


# ------------------------------------------------------------------------------ parameters
VENDOR_BLAS_FORMATS = ("bf16", "fp16")


def group_params(dep: Deployment, cal: Calibration, epoch: str | None = None) -> tuple[GroupParams, str]:
    """The efficiency factors for a deployment: its (engine, class, epoch) group.

    The groups are fitted on DeepSeek's MLA + MoE models with block-scaled FP8/FP4 or GGUF
    weights, where engines run their own kernels (grouped MoE GEMMs, MLA, block-quantised GEMMs).
    A dense GQA model with BF16/FP16 weights runs the vendor's BLAS and FlashAttention in every
    engine, so none of that fitted slowness applies to it: its GEMM efficiency, bandwidth, tile
    size and kernel latency are the better of the group's and the hardware family's physics
    prior; only the engine's per-step overhead is the group's."""
    p, label = cal.lookup(dep.engine.id, hw_class(dep), epoch)
    m = dep.model
    if dep.weights.id in VENDOR_BLAS_FORMATS and not m.is_moe and m.attention != "mla":
        ph = cal.physics(hw_class(dep))
        if ph is not None:
            p = replace(
                p,
                bw_eff=max(p.bw_eff, ph.bw_eff),
                compute_eff=max(p.compute_eff, ph.compute_eff),
                m_half=min(p.m_half, ph.m_half),
                kernel_us=min(p.kernel_us, ph.kernel_us),
            )
    return p, label


# ------------------------------------------------------------------------------ serving
# The highest memory fraction engines are run at when the default leaves no KV room (SGLang
# --mem-fraction-static, vLLM --gpu-memory-utilization, TRT-LLM free_gpu_memory_fraction all accept
# up to ~0.95 in practice; the rest is the CUDA context and graph pool). UNCONFIRMED practice value.
MAX_MEMORY_FRACTION = 0.95


def serving_capacity_tokens(dep: Deployment, mem: MemoryPlan) -> int:
    """KV tokens the engine really holds. The memory plan applies each engine's memory fraction to
    total memory; TensorRT-LLM's free_gpu_memory_fraction is a fraction of the memory left after
    weights and runtime (engines.toml `memory_fraction_of = "free"`). When the default fraction
    leaves no room for the KV cache but the device has some, a deployment that runs has had its
    fraction raised: up to MAX_MEMORY_FRACTION of the device."""
    e = dep.engine
    if dep.placement != "gpu" or e.memory_fraction is None or not mem.devices:
        return mem.kv_capacity_tokens
    d = mem.devices[0]
    if d.kv_bytes_per_token <= 0:
        return mem.kv_capacity_tokens
    if e.memory_fraction_of == "free":
        space = (d.capacity_bytes - d.static_bytes) * e.memory_fraction.value
    else:
        space = d.kv_space_bytes
    if space <= 0:
        space = d.capacity_bytes * MAX_MEMORY_FRACTION - d.static_bytes
    if space <= 0:
        return 0
    return int(space / d.kv_bytes_per_token) * dep.par.dp_attention * dep.replicas


def _batch(dep: Deployment, wl: Workload, capacity_tokens: int, notes: list[str]) -> tuple[int, int]:
    """(requests running at once per replica, clients per replica). A running request holds its
    prompt and, on average, half its output (paged KV grows as it decodes)."""
    footprint = max(1.0, wl.input_len + max(0, wl.output_len) / 2)
    cap_reqs = max(1, int(capacity_tokens / footprint) // dep.replicas)
    per_replica = max(1, math.ceil(wl.concurrency / dep.replicas))
    batch = min(per_replica, cap_reqs, int(dep.engine.max_num_seqs.value) * max(1, dep.par.dp_attention))
    if batch < per_replica:
        notes.append(
            f"{per_replica} clients per replica but {batch} run at once (KV capacity / max_num_seqs): the rest queue"
        )
    return batch, per_replica


@dataclass(frozen=True)
class _Serve:
    ttft: float  # s, one request once admitted
    tpot: float  # s
    cycle: float  # s a batch slot is busy per request (throughput = batch · out / cycle)


def _steady(t_pf: float, step_s: float, t_tok: float, batch: int, out: int) -> _Serve:
    """Closed loop in steady state. A request shares the GPU with the *other* B − 1 clients'
    prefills: ρ = (B − 1)·t_pf / E2E(ρ) is the share of time they take (chunked prefill interleaved
    with decode), so TPOT = t_tok / (1 − ρ) and a new prompt waits ρ·t_pf / (2(1 − ρ)) (M/D/1) for
    the prefill in progress. g(ρ) = ρ − (B − 1)·t_pf / E2E(ρ) rises monotonically from g(0) ≤ 0 to
    g(1⁻) > 0 (E2E → ∞), so bisection finds the one root; a single client has ρ = 0."""

    def e2e_at(r: float) -> float:
        wait = r * t_pf / (2 * (1 - r))
        return t_pf + wait + step_s + (out - 1) * t_tok / (1 - r)

    rho = 0.0
    if out > 0 and t_pf > 0 and batch > 1:
        lo, hi = 0.0, 0.999
        for _ in range(50):
            mid = (lo + hi) / 2
            if mid - (batch - 1) * t_pf / e2e_at(mid) > 0:
                hi = mid
            else:
                lo = mid
        rho = (lo + hi) / 2
    tpot = t_tok / (1 - rho)
    ttft = t_pf + rho * t_pf / (2 * (1 - rho)) + step_s
    return _Serve(ttft, tpot, ttft + (out - 1) * tpot)


def _burst(t_pf_all: float, n_chunks: int, step_s: float, t_tok: float, out: int) -> _Serve:
    """All B requests start together: their prompts go through in n_chunks chunks; the mean
    request gets its first token after (n+1)/(2n) of the burst's prefill; the prefill still to
    come after that shares the GPU with its decode."""
    n = max(1, n_chunks)
    ttft = t_pf_all * (n + 1) / (2 * n) + step_s
    rest = t_pf_all - t_pf_all * (n + 1) / (2 * n)
    tpot = t_tok + (rest / (out - 1) if out > 1 else 0.0)
    return _Serve(ttft, tpot, t_pf_all + step_s + (out - 1) * t_tok)


def _waves(dep: Deployment, p: GroupParams, wl: Workload, batch: int, steady: _Serve) -> _Serve:
    """Steady state whose arrivals come in waves: the B prompts of a wave arrive within
    WAVE_SPREAD of a cycle; when prefilling them all (batched) takes longer than that window, the
    backlog is what the mean request waits for on top of its steady-state TTFT (fluid queue:
    half of the excess)."""
    if batch <= 1 or wl.input_len <= 0:
        return steady
    t_all, _ = prefill_time(dep, p, wl.input_len, seqs=batch)
    backlog = max(0.0, t_all - WAVE_SPREAD * steady.cycle)
    return _Serve(steady.ttft + backlog / 2, steady.tpot, steady.cycle)


def _rate(t_pf: float, step_s: float, t_tok: float, lam: float, out: int) -> _Serve:
    """Open-loop arrivals at λ per replica: the prefill server is busy ρ = λ·t_pf of the time
    (M/D/1 wait ρ·t_pf / (2(1 − ρ))); decode slows by 1/(1 − ρ)."""
    rho = min(0.99, lam * t_pf)
    tpot = t_tok / (1 - rho)
    ttft = t_pf + rho * t_pf / (2 * (1 - rho)) + step_s
    return _Serve(ttft, tpot, ttft + (out - 1) * tpot)


def _open_loop(
    dep: Deployment,
    p: GroupParams,
    wl: Workload,
    capacity_tokens: int,
    t_pf: float,
    accept: float,
    lam: float,
    notes: list[str],
) -> tuple[int, StepCost, _Serve]:
    """Open-loop arrivals at λ requests/s per replica (`vllm bench serve --request-rate`): the
    requests in flight are not the client's to choose. Little's law, N = λ · E2E(N), solved by
    fixed-point iteration (E2E grows with N through the decode step), capped by what the engine
    runs at once (KV capacity, max_num_seqs). When even that batch cannot serve λ (λ · cycle(N_max)
    > N_max), the deployment is overloaded: the queue grows for as long as the run lasts, the
    throughput is the deployment's maximum and the TTFT depends on the run's length (noted)."""
    n_max, _ = _batch(dep, Workload(wl.input_len, wl.output_len, 10**9), capacity_tokens, [])
    out = max(1, wl.output_len)
    context = wl.input_len + max(0, wl.output_len) / 2

    def at(n: int) -> tuple[StepCost, _Serve]:
        step = decode_step(dep, p, n, context)
        return step, _rate(t_pf, step.total_s, step.total_s / accept, lam, out)

    n = 1
    for _ in range(60):
        step, s = at(n)
        want = min(n_max, max(1, math.ceil(lam * s.cycle)))
        if want == n:
            break
        n = want if abs(want - n) <= 1 else (n + want + 1) // 2
    step, s = at(n)
    if n >= n_max and lam * s.cycle > n_max:
        notes.append(
            f"overloaded: {lam:g} requests/s per replica arrive faster than {n_max} running at once serve "
            f"them ({n_max / s.cycle:.3g}/s); the queue grows for as long as the run lasts, so the measured "
            "TTFT depends on the run's length"
        )
    return n, step, s


def predict(
    dep: Deployment,
    wl: Workload,
    calibration: Calibration | None = None,
    *,
    arrival: str = "steady",
    role: str = "aggregated",
    epoch: str | None = None,
    request_rate: float | None = None,
    capacity_tokens: int | None = None,
) -> PerfPrediction:
    """TTFT, TPOT and throughput for `wl.concurrency` clients arriving as `arrival` says.

    `calibration=None` means the shipped calibration (catalog/data/calibration.toml, read once by the
    catalog layer); pass `Calibration()` for the pure roofline. `epoch` picks the efficiency of an
    engine release (None = the newest fitted). `capacity_tokens` lets a caller that predicts the
    same deployment many times pass `serving_capacity_tokens` once."""
    if calibration is None:
        from dsdeploy.catalog.calibration import shipped_calibration

        calibration = shipped_calibration()
    cal = calibration
    p, label = group_params(dep, cal, epoch)
    notes: list[str] = []
    if capacity_tokens is None:
        capacity_tokens = serving_capacity_tokens(dep, plan_memory(dep, Workload(wl.input_len, wl.output_len, 1)))
    out = max(1, wl.output_len)
    accept = 1 + MTP_ACCEPTANCE if dep.mtp else 1.0
    if dep.mtp:
        notes.append(f"MTP: {accept:.2f} tokens per step ({MTP_SOURCE})")
    t_pf, _ = prefill_time(dep, p, wl.input_len)
    context = wl.input_len + max(0, wl.output_len) / 2
    if arrival == "rate" and request_rate and role != "prefill":
        batch, step, s = _open_loop(dep, p, wl, capacity_tokens, t_pf, accept, request_rate / dep.replicas, notes)
        per_replica = batch
    else:
        batch, per_replica = _batch(dep, wl, capacity_tokens, notes)
        step = decode_step(dep, p, batch, context)
        s = _serve(dep, p, wl, batch, t_pf, step.total_s, step.total_s / accept, arrival, role, request_rate)
    ttft = s.ttft + p.request_ms * 1e-3  # HTTP, tokenisation, admission: once per request
    total = dep.replicas * batch * wl.output_len / s.cycle if wl.output_len and role != "prefill" else 0.0
    if arrival == "rate" and request_rate:  # open loop: what arrives, up to what the batch serves
        total = min(total, request_rate * wl.output_len)
    queue_factor = per_replica / batch
    if queue_factor > 1 and arrival != "rate":  # closed loop: each client waits (q − 1) runs ahead of it
        ttft += (queue_factor - 1) * s.cycle
    if label != "calibrated":
        notes.append(f"efficiency factors: {label} ({p.engine}/{p.hw_class})")
    return PerfPrediction(
        concurrency=wl.concurrency,
        batch=batch,
        ttft_ms=ttft * 1e3,
        tpot_ms=s.tpot * 1e3,
        e2e_ms=(ttft + (out - 1) * s.tpot) * 1e3,
        decode_tok_s_per_user=1.0 / s.tpot if s.tpot > 0 else 0.0,
        output_tok_s_total=total,
        prefill_tok_s=wl.input_len / t_pf if t_pf > 0 else 0.0,
        band=p.band if label != "roofline" else cal.default_band,
        label="calibrated" if label.startswith("calibrated") else "roofline",
        bound=step.bound,
        notes=notes,
        arrival=arrival,
        role=role,
    )


def _serve(
    dep: Deployment,
    p: GroupParams,
    wl: Workload,
    batch: int,
    t_pf: float,
    step_s: float,
    t_tok: float,
    arrival: str,
    role: str,
    request_rate: float | None,
) -> _Serve:
    out = max(1, wl.output_len)
    if role == "decode":  # PD decode side: prompts were prefilled elsewhere
        return _Serve(step_s, t_tok, step_s + (out - 1) * t_tok)
    if arrival == "rate" and request_rate:
        return _rate(t_pf, step_s, t_tok, request_rate / dep.replicas, out)
    if arrival == "waves" and role != "prefill":
        return _waves(dep, p, wl, batch, _steady(t_pf, step_s, t_tok, batch, out))
    if arrival == "burst" or role == "prefill":
        t_all, _ = prefill_time(dep, p, wl.input_len, seqs=batch) if batch > 1 else (t_pf, "")
        chunk = max(1, int(dep.engine.max_batched_tokens.value))
        n_chunks = math.ceil(batch * max(1, wl.input_len) / chunk)
        if role == "prefill":
            return _Serve(t_all * (n_chunks + 1) / (2 * n_chunks), 0.0, t_all)
        return _burst(t_all, n_chunks, step_s, t_tok, out)
    return _steady(t_pf, step_s, t_tok, batch, out)


def concurrency_levels(max_concurrency: int) -> list[int]:
    levels, c = [], 1
    while c <= max(1, max_concurrency):
        levels.append(c)
        c *= 4
    if levels[-1] != max_concurrency and max_concurrency > 1:
        levels.append(max_concurrency)
    return levels


def sweep(
    dep: Deployment, wl: Workload, max_concurrency: int, calibration: Calibration | None = None
) -> list[PerfPrediction]:
    """Predictions at concurrency 1, 4, 16, 64, … up to `max_concurrency` (the KV capacity)."""
    return [
        predict(dep, Workload(wl.input_len, wl.output_len, c), calibration) for c in concurrency_levels(max_concurrency)
    ]
