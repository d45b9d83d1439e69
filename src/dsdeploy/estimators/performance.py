"""Step-time and serving model: TTFT, TPOT and throughput for any deployment the planner accepts.

A step (prefill chunk or decode step) on the busiest device costs

    max(compute time, memory-traffic time) + communication + layers × per-layer overhead

- Bytes read per decode step: the device's dense weights, plus the routed experts actually touched
  by T tokens — the expected number of distinct experts per MoE layer is E·(1−(1−k/E)^T) (each
  token picks k of E uniformly; DeepSeek's balanced routing makes this the right mean), split like
  the experts themselves — plus each sequence's KV (the MLA latent for DeepSeek).
- FLOPs: 2 × active matmul parameters × tokens plus attention (ModelSpec: absorbed MLA in decode,
  non-absorbed causal in prefill), divided over the instance's devices.
- Compute dtype actually run: the format's `compute` when the hardware has it (FP8 on Hopper,
  Blackwell, MI300X, Ada), else its fallback (A100 runs FP8 weights as W8A16 → BF16); W4A16 and
  GGUF dequantize (BF16 / INT8 dot products); CPUs use their AMX/AVX-512 rate.
- Communication: TP all-reduce twice per layer (ring: 2(n−1)/n × bytes / link + latency), EP
  dispatch and combine (all-to-all of k × hidden per token), PP hand-off per stage boundary;
  links from the catalog (NVLink, XGMI, PCIe, InfiniBand).
- Placements: experts-on-cpu (CPU DRAM bandwidth and CPU compute for the experts, GPU for the rest,
  PCIe for activations, run one after the other); layer-split (GPU layers + CPU layers in
  sequence); cpu (DRAM bandwidth; sockets scale with a NUMA factor); unified (SoC memory).
- MTP speculative decoding: one draft token per step accepted with probability p; a step verifies
  2 tokens per sequence and yields 1 + p. Default p = 0.85 (DeepSeek-V3 report §5.4.3: "acceptance
  rate … between 85% and 90%").

Serving (closed loop of `c` clients, continuous batching up to the KV capacity):
    B = min(c, KV capacity in requests, engine max_num_seqs); queueing beyond that.
    λ = c / E2E (requests/s);  ρ = λ · t_prefill  (share of time spent prefilling, chunked prefill
    interleaved with decode);  TPOT = t_decode(B) / (1 − ρ);  TTFT = t_prefill + wait + one step;
    E2E = TTFT + (out − 1) · TPOT;  solved by fixed-point iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from dsdeploy.estimators.calibration import Calibration, GroupParams
from dsdeploy.estimators.memory import Workload, kv_bytes_per_token, kv_tp_split, plan_memory, weight_bytes_by_component
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

Bound = Literal["compute", "memory"]  # which roofline term sets a step's time


@dataclass
class StepCost:
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.comm_s + self.overhead_s

    @property
    def bound(self) -> Bound:
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
    bound: Bound
    notes: list[str] = field(default_factory=list)

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
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------ helpers
def experts_touched(n_experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts hit per MoE layer by `tokens` tokens choosing top_k of n_experts."""
    if n_experts <= 0 or tokens <= 0:
        return 0.0
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)


def hw_class(dep: Deployment) -> str:
    """Calibration group class for a deployment."""
    if dep.placement in ("experts-on-cpu", "layer-split"):
        return "hybrid"
    if dep.placement == "cpu":
        return "cpu"
    if dep.placement == "unified":
        return "unified"
    assert dep.accelerator is not None  # placement gpu has one (resolve_deployment)
    base = "datacenter-gpu" if dep.accelerator.hw_class == "datacenter-gpu" else "pcie-gpu"
    # ROCm and CUDA stacks differ in kernel maturity: AMD parts get their own group.
    return base + "-amd" if dep.accelerator.vendor == "amd" else base


def _acc_tflops(dep: Deployment) -> float:
    """Dense peak TFLOPS of one accelerator for the dtype the format actually computes in."""
    assert dep.accelerator is not None  # only called for placements with an accelerator
    t = dep.accelerator.tflops
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


def _allreduce_s(nbytes: float, n: int, link_gbs: float, latency_us: float) -> float:
    if n <= 1:
        return 0.0
    return latency_us * 1e-6 + 2 * (n - 1) / n * nbytes / (link_gbs * 1e9)


# ------------------------------------------------------------------------------ steps
def step_cost(dep: Deployment, p: GroupParams, tokens: float, seqs: float, context: float, prefill: bool) -> StepCost:
    """Cost of one step processing `tokens` new tokens for `seqs` sequences whose mean attended
    context is `context` (prefill: the chunk attends causally within itself plus `context`)."""
    m = dep.model
    W = weight_bytes_by_component(dep)
    kv_tok = kv_bytes_per_token(dep)
    ce = p.prefill_eff if prefill else p.compute_eff
    if prefill:
        attn_flops = m.attention_flops_prefill(int(tokens)) + (
            m.attention_flops_decode(int(context)) * tokens if context else 0.0
        )
    else:
        attn_flops = m.attention_flops_decode(int(context)) * tokens
    flops = 2.0 * m.params_matmul_active * tokens + attn_flops
    touched = experts_touched(m.n_routed_experts, m.experts_per_token, tokens) / max(1, m.n_routed_experts)
    routed_read = W["routed_experts"] * min(1.0, touched)
    dense_read = W["attention"] + W["dense_mlp"] + W["shared_experts"] + W["lm_head"] + W["other"]
    kv_read = seqs * context * kv_tok
    overhead = m.layers * p.layer_overhead_us * 1e-6
    hidden_bytes = tokens * m.hidden * 2

    if dep.placement == "gpu":
        par = dep.par
        stage = par.tp * par.dp_attention
        assert dep.accelerator is not None  # placement gpu has one (resolve_deployment)
        bw = dep.accelerator.bandwidth_gbs.value * 1e9 * p.bw_eff
        peak = _acc_tflops(dep) * 1e12 * ce
        # bytes one device of each stage reads for the whole token; a token passes every stage in
        # turn, so the stages' times add up to the whole model's on one stage's devices
        dev_bytes = (
            W["attention"] / par.tp
            + (W["dense_mlp"] + W["shared_experts"]) / stage
            + W["lm_head"] / par.tp
            + W["other"]
            + routed_read / stage
            + kv_read / par.dp_attention / kv_tp_split(dep)
        )
        dev_flops = flops / stage
        comm = 0.0
        link = dep.scale_up or dep.host_link
        if link is not None and par.tp > 1:
            lat = link.latency_us.value
            gbs = link.uni_gbs.value
            if par.tp > dep.per_node and dep.scale_out is not None:
                lat, gbs = dep.scale_out.latency_us.value, dep.scale_out.uni_gbs.value
            comm += 2 * m.layers * _allreduce_s(hidden_bytes / par.dp_attention, par.tp, gbs, lat)
        if link is not None and (par.ep > 1 or par.dp_attention > 1) and m.is_moe:
            n = max(par.ep, par.dp_attention)
            # each token's hidden state goes to its k experts' ranks, (n−1)/n of them remote, 1 byte
            # per element (DeepEP dispatches FP8; deepseek-ai/DeepEP README), spread over n devices
            a2a_bytes = tokens * m.experts_per_token * m.hidden * 1.0 * (n - 1) / n / n
            comm += 2 * m.moe_layers * (link.latency_us.value * 1e-6 + a2a_bytes / (link.uni_gbs.value * 1e9))
        if par.pp > 1:
            so = dep.scale_out if dep.nodes > 1 and dep.scale_out else (dep.scale_up or dep.host_link)
            if so is not None:
                comm += (par.pp - 1) * (so.latency_us.value * 1e-6 + hidden_bytes / (so.uni_gbs.value * 1e9))
        return StepCost(dev_flops / peak, dev_bytes / bw, comm, overhead)

    if dep.placement == "unified":
        n = max(1, dep.devices)
        assert dep.accelerator is not None  # placement unified has one (resolve_deployment)
        bw = dep.accelerator.bandwidth_gbs.value * 1e9 * p.bw_eff
        peak = _acc_tflops(dep) * 1e12 * ce
        total = dense_read + routed_read + kv_read
        hop = 0.0
        if n > 1:  # EXO-style pipeline over the network: one hop per extra device
            hop = (n - 1) * (UNIFIED_HOP_LATENCY_S + hidden_bytes / (UNIFIED_HOP_GBS * 1e9))
        # pipeline: the token visits each device's share in turn → same sum as one device
        return StepCost(flops / peak, total / bw, hop, overhead)

    cpu_bw = _cpu_bw(dep) * 1e9 * p.bw_eff
    cpu_peak = cpu_peak_tflops(dep) * 1e12 * ce
    if dep.placement == "cpu":
        return StepCost(flops / cpu_peak, (dense_read + routed_read + kv_read) / cpu_bw, 0.0, overhead)

    gpus = max(1, dep.devices)
    assert dep.accelerator is not None  # experts-on-cpu and layer-split have one (resolve_deployment)
    gpu_bw = dep.accelerator.bandwidth_gbs.value * 1e9 * p.bw_eff
    gpu_peak = _acc_tflops(dep) * 1e12 * ce
    pcie = (dep.host_link.uni_gbs.value if dep.host_link else DEFAULT_HOST_LINK_GBS) * 1e9
    expert_flops = 2.0 * m.moe_layers * m.experts_per_token * m.expert_params() * tokens
    if dep.placement == "experts-on-cpu":
        g_bytes = (dense_read + kv_read) / gpus
        g = max((flops - expert_flops) / (gpu_peak * gpus), g_bytes / gpu_bw)
        c = max(expert_flops / cpu_peak, routed_read / cpu_bw)
        xfer = 2 * m.moe_layers * hidden_bytes / pcie
        return StepCost(0.0, g + c, xfer, overhead)
    # layer-split: the memory plan's -ngl split
    mem = plan_memory(dep, Workload(int(context) or 1, 1, max(1, int(seqs))))
    f_gpu = (mem.gpu_layers or 0) / m.layers
    all_bytes = dense_read + routed_read + kv_read
    g = max(flops * f_gpu / (gpu_peak * gpus), all_bytes * f_gpu / (gpu_bw * gpus))
    c = max(flops * (1 - f_gpu) / cpu_peak, all_bytes * (1 - f_gpu) / cpu_bw)
    xfer = hidden_bytes / pcie * (2 if 0 < f_gpu < 1 else 0)
    return StepCost(0.0, g + c, xfer, overhead)


def prefill_time(dep: Deployment, p: GroupParams, prompt_len: int, seqs: int = 1) -> tuple[float, str]:
    """Seconds to prefill `seqs` prompts of `prompt_len` tokens, in chunks of max_batched_tokens."""
    if prompt_len <= 0:
        return 0.0, "none"
    chunk = max(1, int(dep.engine.max_batched_tokens.value))
    total = prompt_len * seqs
    t, done, bound = 0.0, 0, "memory"
    while done < total:
        n = min(chunk, total - done)
        ctx_before = (done % prompt_len) if seqs == 1 else 0
        c = step_cost(dep, p, n, 1, ctx_before, prefill=True)
        t += c.total_s
        bound = c.bound
        done += n
    return t, bound


def decode_step(dep: Deployment, p: GroupParams, batch: int, context: float) -> StepCost:
    tokens = batch * (2 if dep.mtp else 1)
    return step_cost(dep, p, tokens, batch, context, prefill=False)


# ------------------------------------------------------------------------------ serving
def predict(dep: Deployment, wl: Workload, calibration: Calibration | None = None) -> PerfPrediction:
    """TTFT, TPOT and throughput for `wl.concurrency` closed-loop clients.

    `calibration=None` means the shipped calibration (catalog/data/calibration.toml, read once by the
    catalog layer); pass `Calibration()` for the pure roofline."""
    if calibration is None:
        from dsdeploy.catalog.calibration import shipped_calibration

        calibration = shipped_calibration()
    cal = calibration
    p, label = cal.lookup(dep.engine.id, hw_class(dep))
    notes: list[str] = []
    mem = plan_memory(dep, Workload(wl.input_len, wl.output_len, 1))
    cap_reqs = max(1, mem.max_concurrency // dep.replicas)  # the plan's capacity covers every replica
    per_replica = max(1, math.ceil(wl.concurrency / dep.replicas))
    batch = min(per_replica, cap_reqs, int(dep.engine.max_num_seqs.value) * max(1, dep.par.dp_attention))
    if batch < per_replica:
        notes.append(
            f"{per_replica} clients per replica but {batch} run at once (KV capacity / max_num_seqs): the rest queue"
        )
    ctx = wl.input_len + max(0, wl.output_len) / 2
    t_pf, pf_bound = prefill_time(dep, p, wl.input_len)
    step = decode_step(dep, p, batch, ctx)
    accept = 1 + MTP_ACCEPTANCE if dep.mtp else 1.0
    if dep.mtp:
        notes.append(f"MTP: {accept:.2f} tokens per step ({MTP_SOURCE})")
    t_tok = step.total_s / accept
    out = max(1, wl.output_len)

    # Prefill interference: ρ = λ·t_pf with λ = B / E2E(ρ). g(ρ) = ρ − B·t_pf / E2E(ρ) rises
    # monotonically from g(0) < 0 to g(1⁻) > 0 (E2E → ∞), so bisection finds the one root.
    def e2e_at(r: float) -> float:
        wait = r * t_pf / (2 * (1 - r))
        return t_pf + wait + step.total_s + (out - 1) * t_tok / (1 - r)

    rho = 0.0
    if wl.output_len > 0 and t_pf > 0:
        lo, hi = 0.0, 0.999
        for _ in range(60):
            mid = (lo + hi) / 2
            if mid - batch * t_pf / e2e_at(mid) > 0:
                hi = mid
            else:
                lo = mid
        rho = (lo + hi) / 2
    tpot = t_tok / (1 - rho)
    ttft = t_pf + rho * t_pf / (2 * (1 - rho)) + step.total_s
    e2e_run = ttft + (out - 1) * tpot  # one request once it is running
    total = dep.replicas * batch * wl.output_len / e2e_run if wl.output_len else 0.0
    queue_factor = per_replica / batch
    e2e = e2e_run
    if queue_factor > 1:  # closed loop: each client waits for (queue_factor − 1) runs ahead of it
        ttft += (queue_factor - 1) * e2e_run
        e2e = ttft + (out - 1) * tpot
    if label != "calibrated":
        notes.append(f"efficiency factors: {label} ({p.engine}/{p.hw_class})")
    return PerfPrediction(
        concurrency=wl.concurrency,
        batch=batch,
        ttft_ms=ttft * 1e3,
        tpot_ms=tpot * 1e3,
        e2e_ms=e2e * 1e3,
        decode_tok_s_per_user=1.0 / tpot if tpot > 0 else 0.0,
        output_tok_s_total=total,
        prefill_tok_s=wl.input_len / t_pf if t_pf > 0 else 0.0,
        band=p.band if label != "roofline" else cal.default_band,
        label="calibrated" if label.startswith("calibrated") else "roofline",
        bound=step.bound,
        notes=notes,
    )


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
