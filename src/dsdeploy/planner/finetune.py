"""Fine-tuning plan: does a full / LoRA / QLoRA run fit, what binds, what fits instead, how long a
step takes and what a checkpoint costs. Composes `estimators.finetune` with the hardware catalog and
`estimators.storage`; returns plain data (`plan_dict` is the `dsdeploy finetune --json` document).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from dsdeploy.catalog import Catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators import finetune as ft
from dsdeploy.estimators.memory import accelerator_bytes
from dsdeploy.estimators.storage import load_time
from dsdeploy.specs.model import ModelSpec

GB = 1e9
DEFAULT_HOST_RAM_GB = 1024.0  # assumption when --host-ram-gb is not given (a 2-socket 8-GPU server)
HOST_RESERVE_GB = 32.0  # OS, dataloader workers, pinned staging buffers (estimate, unconfirmed)
MAX_NODES = 64
JSON_VERSION = 1


@dataclass(frozen=True)
class TrainHardware:
    accelerator: str
    memory_bytes: int
    peak_flops: float  # bf16 dense
    host_link: str | None
    host_link_gbs: float | None
    host_ram_bytes_per_node: int
    host_ram_assumed: bool
    storage: str
    drives: int
    storage_gbs_per_node: float  # sequential rate of the node's drives (RAID0)
    sources: dict[str, str]


def resolve_hardware(
    catalog: Catalog,
    accelerator: str,
    host_ram_gb: float | None = None,
    storage: str = "nvme-gen4",
    drives: int = 1,
) -> TrainHardware:
    acc = catalog.accelerator(accelerator)
    if acc.unified_memory or acc.hw_class == "unified-soc":
        raise UserError(f"accelerator '{accelerator}' has unified memory; the fine-tuning planner covers discrete GPUs")
    bf16 = acc.tflops.get("bf16") or acc.tflops.get("fp16")
    if bf16 is None:
        raise UserError(f"accelerator '{accelerator}' has no bf16/fp16 tensor rate in the catalog")
    link = catalog.link(acc.host_link) if acc.host_link else None
    st = catalog.storage_class(storage)
    if drives < 1:
        raise UserError(f"--drives must be at least 1, got {drives}")
    if host_ram_gb is not None and not (math.isfinite(host_ram_gb) and host_ram_gb > 0):
        raise UserError(f"--host-ram-gb must be a finite number > 0, got {host_ram_gb}")
    lt = load_time(1, st.read_gbs.value, drives=drives, raid0=True, drive_class=storage)
    return TrainHardware(
        accelerator=acc.id,
        memory_bytes=accelerator_bytes(acc),
        peak_flops=bf16.value * 1e12,
        host_link=acc.host_link,
        host_link_gbs=link.uni_gbs.value if link else None,
        host_ram_bytes_per_node=int((host_ram_gb if host_ram_gb is not None else DEFAULT_HOST_RAM_GB) * GB),
        host_ram_assumed=host_ram_gb is None,
        storage=storage,
        drives=drives,
        storage_gbs_per_node=lt.array_gbs,
        sources={
            "memory": (
                f"{acc.memory_visible_mib.label}: {acc.memory_visible_mib.source}"
                if acc.memory_visible_mib is not None
                else f"{acc.memory_gb.label}: {acc.memory_gb.source}"
            ),
            "bf16_tflops": f"{bf16.label}: {bf16.source}",
            "host_link": f"{link.uni_gbs.label}: {link.uni_gbs.source}" if link else "none",
            "storage": f"{st.read_gbs.label}: {st.read_gbs.source}; write rate taken equal to sequential read (assumption)",
            "host_ram": "assumed 1024 GB per node (pass --host-ram-gb)"
            if host_ram_gb is None
            else "given (--host-ram-gb)",
        },
    )


@dataclass(frozen=True)
class FinetunePlan:
    label: str
    setup: ft.FinetuneSetup
    trainable: ft.LoraCount | None
    memory: ft.FinetuneMemory
    time: ft.StepTime
    checkpoint: ft.Checkpoint
    gpu_capacity_bytes: int
    host_ram_bytes_per_node: int
    fits: bool
    binding: str  # gpu-memory | host-memory | none

    @property
    def gpu_use(self) -> float:
        return self.memory.gpu_bytes / self.gpu_capacity_bytes

    def summary(self) -> dict:
        s = self.setup
        return {
            "label": self.label,
            "method": s.method,
            "sharding": s.sharding,
            "gpus": s.gpus,
            "nodes": s.nodes,
            "seq_len": s.seq_len,
            "micro_batch": s.micro_batch,
            "grad_ckpt": s.grad_ckpt,
            "sp": s.sp,
            "gpu_gb": round(self.memory.gpu_bytes / GB, 2),
            "cpu_gb_per_node": round(self.memory.cpu_bytes_per_node / GB, 1),
            "fits": self.fits,
            "binding": self.binding,
            "step_s": round(self.time.seconds, 3),
        }


def validate(setup: ft.FinetuneSetup, spec: ModelSpec | None = None) -> None:
    errs = ft.check_setup(setup) + (ft.check_model_setup(spec, setup) if spec is not None else [])
    if errs:
        raise UserError("; ".join(errs))


def evaluate(spec: ModelSpec, setup: ft.FinetuneSetup, hw: TrainHardware, label: str = "requested") -> FinetunePlan:
    validate(setup, spec)
    lora = (
        ft.lora_trainable(spec, setup.lora_rank, setup.lora_targets, setup.expert_layout)
        if setup.method != "full"
        else None
    )
    mem = ft.memory(spec, setup)
    trainable = lora.trainable if lora else spec.params_total
    t = ft.step_time(spec, setup, hw.peak_flops, hw.host_link_gbs, hw.storage_gbs_per_node, trainable)
    ck = ft.checkpoint(spec, setup, trainable, hw.storage_gbs_per_node)
    host_cap = hw.host_ram_bytes_per_node - int(ft.GB * HOST_RESERVE_GB)
    gpu_ok = mem.gpu_bytes <= hw.memory_bytes
    host_ok = mem.cpu_bytes_per_node <= host_cap
    if not gpu_ok and (host_ok or mem.gpu_bytes / hw.memory_bytes >= mem.cpu_bytes_per_node / max(host_cap, 1)):
        binding = "gpu-memory"
    elif not host_ok:
        binding = "host-memory"
    else:
        binding = "none"
    return FinetunePlan(label, setup, lora, mem, t, ck, hw.memory_bytes, host_cap, gpu_ok and host_ok, binding)


def alternatives(spec: ModelSpec, setup: ft.FinetuneSetup, hw: TrainHardware, limit: int = 8) -> list[FinetunePlan]:
    """Variants that fit, one change (or a minimal pair) each: gradient checkpointing, more sharding,
    offload, QLoRA, more nodes, sequence parallel, a smaller micro-batch, a shorter sequence."""
    out: list[FinetunePlan] = []
    seen: set[ft.FinetuneSetup] = {setup}

    def add(label: str, s: ft.FinetuneSetup) -> None:
        if s in seen or ft.check_setup(s):
            return
        seen.add(s)
        p = evaluate(spec, s, hw, label)
        if p.fits:
            out.append(p)

    if not setup.grad_ckpt:
        add("gradient checkpointing on", replace(setup, grad_ckpt=True))
    for sh in ("zero3", "fsdp-full", "zero3-offload-cpu", "zero3-offload-nvme"):
        if sh != setup.sharding:
            add(f"sharding {sh}", replace(setup, sharding=sh))
            add(f"sharding {sh} + gradient checkpointing", replace(setup, sharding=sh, grad_ckpt=True))
    if setup.method == "lora":
        add("QLoRA (NF4 base)", replace(setup, method="qlora"))
    if setup.method == "full":
        add("LoRA instead of full fine-tuning", replace(setup, method="lora"))
    nodes = setup.nodes
    while nodes < MAX_NODES:
        nodes *= 2
        before = len(out)
        add(f"{nodes} nodes", replace(setup, nodes=nodes))
        if len(out) > before:
            break
    sp = setup.sp
    while sp * 2 <= min(setup.gpus, 16) and setup.seq_len % (sp * 2) == 0:
        sp *= 2
        before = len(out)
        add(f"sequence parallel {sp}", replace(setup, sp=sp))
        if len(out) > before:
            break
    if setup.micro_batch > 1:
        add(
            "micro-batch 1 (raise gradient accumulation)",
            replace(setup, micro_batch=1, grad_accum=setup.grad_accum * setup.micro_batch),
        )
    seq = setup.seq_len
    while seq > 256:
        seq //= 2
        if setup.sp > 1 and seq % setup.sp:
            break
        before = len(out)
        add(f"sequence length {seq}", replace(setup, seq_len=seq))
        if len(out) > before:
            break
    out.sort(key=lambda p: (p.setup.gpus, p.memory.gpu_bytes))
    return out[:limit]


def plan_dict(spec: ModelSpec, setup: ft.FinetuneSetup, hw: TrainHardware, with_alternatives: bool = True) -> dict:
    """The `dsdeploy finetune --json` document. Keys are stable (JSON_VERSION)."""
    p = evaluate(spec, setup, hw)
    alts = alternatives(spec, setup, hw) if with_alternatives and not p.fits else []
    m = p.memory
    verdict = (
        f"fits: {m.gpu_bytes / GB:,.1f} GB of {hw.memory_bytes / GB:,.0f} GB per GPU"
        if p.fits
        else (
            f"does not fit: {m.gpu_bytes / GB:,.1f} GB needed per GPU, {hw.memory_bytes / GB:,.0f} GB available"
            if p.binding == "gpu-memory"
            else f"does not fit: {m.cpu_bytes_per_node / GB:,.0f} GB of host RAM needed per node, "
            f"{p.host_ram_bytes_per_node / GB:,.0f} GB usable"
        )
    )
    lora = p.trainable
    ck = p.checkpoint
    t = p.time
    notes = list(lora.notes) if lora else []
    if setup.sharding.startswith("zero3") and spec.is_moe and setup.expert_layout == "fused":
        notes.append(
            f"ZeRO-3 gathers a whole module at once; with transformers ≥ 5 a layer's routed experts are one "
            f"{m.states.largest_module_params / 1e9:.2f}B-parameter module ({m.states.gather_bytes / GB:.1f} GB of "
            f"gathered {'NF4' if setup.method == 'qlora' else setup.precision} weights per GPU); --expert-layout "
            "per-expert models transformers < 5"
        )
    if hw.host_ram_assumed and setup.offload == "cpu":
        notes.append("host RAM per node assumed 1024 GB; pass --host-ram-gb")
    return {
        "version": JSON_VERSION,
        "model": {
            "name": spec.name,
            "params_total": spec.params_total,
            "params_active": spec.params_matmul_active,
            "is_moe": spec.is_moe,
        },
        "setup": asdict(setup) | {"lora_targets": list(setup.lora_targets), "gpus": setup.gpus, "dp": setup.dp},
        "hardware": {
            "accelerator": hw.accelerator,
            "gpu_memory_bytes": hw.memory_bytes,
            "peak_bf16_flops": hw.peak_flops,
            "host_link": hw.host_link,
            "host_link_gbs": hw.host_link_gbs,
            "host_ram_bytes_per_node": hw.host_ram_bytes_per_node,
            "storage": hw.storage,
            "drives": hw.drives,
            "storage_gbs_per_node": hw.storage_gbs_per_node,
            "sources": hw.sources,
        },
        "trainable": {
            "params": lora.trainable if lora else spec.params_total,
            "percent": round(100 * (lora.trainable if lora else spec.params_total) / spec.params_total, 4),
            "by_component": lora.by_component if lora else {},
            "fused_expert_remap": lora.fused_expert_remap if lora else False,
            "notes": list(lora.notes) if lora else [],
            "label": "derived",
        },
        "memory": m.to_dict()
        | {
            "label": f"derived; the × {ft.ALLOCATOR_RESERVE:.2f} allocator reserve is calibrated",
            "sources": {
                "model_states": "ZeRO paper arXiv:1910.02054 §3",
                "activations": "Korthikanti et al. arXiv:2205.05198 §4 with MLA/MoE widths (notes §1.4)",
                "allocator_reserve": ft.ALLOCATOR_RESERVE_SOURCE,
                "runtime": ft.RUNTIME_OVERHEAD_SOURCE,
            },
        },
        "fits": p.fits,
        "binding": p.binding,
        "verdict": verdict,
        "time": {
            "flops_per_token": t.flops_per_token,
            "tokens_per_step": t.tokens_per_step,
            "step_seconds": t.seconds,
            "step_seconds_band": list(t.seconds_band),
            "tokens_per_s": t.tokens_per_s,
            "mfu": list(t.mfu),
            "mfu_source": t.mfu_source,
            "offload_bytes_per_gpu": t.offload_bytes_per_gpu,
            "offload_seconds": t.offload_seconds,
            "nvme_bytes_per_node": t.nvme_bytes_per_node,
            "nvme_seconds": t.nvme_seconds,
            "bound": t.bound,
            "label": "derived (MFU calibrated on published step times)",
        },
        "checkpoint": {
            "bytes": ck.bytes_total,
            "components": ck.components,
            "export_bytes": ck.export_bytes,
            "write_seconds": ck.write_seconds,
            "write_gbs": ck.write_gbs,
            "label": "derived",
        },
        "alternatives": [a.summary() for a in alts],
        "notes": notes,
    }
