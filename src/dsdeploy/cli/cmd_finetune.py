"""`dsdeploy finetune`: can this model be fine-tuned (full, LoRA, QLoRA) on this hardware, with what
sharding, and with which configs. An edge: the numbers come from `dsdeploy.planner.finetune`, the
configs from `dsdeploy.engines.finetune_configs`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dsdeploy.cli import options as opt

if TYPE_CHECKING:
    from dsdeploy.estimators.finetune import FinetuneSetup
    from dsdeploy.specs.model import ModelSpec

EMITS = ("plan", "deepspeed", "accelerate", "peft", "launch", "all")


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def _render(doc: dict) -> None:
    m, t, c, tr = doc["memory"], doc["time"], doc["checkpoint"], doc["trainable"]
    s = doc["setup"]
    echo = typer.echo
    echo(
        f"{doc['model']['name']}: {s['method']} fine-tuning, {s['sharding']} on {s['gpus']}× "
        f"{doc['hardware']['accelerator']} ({s['nodes']} node(s)), seq {s['seq_len']} × micro-batch {s['micro_batch']}"
        + (", gradient checkpointing" if s["grad_ckpt"] else "")
        + (f", SP {s['sp']}" if s["sp"] > 1 else "")
    )
    echo(f"trainable parameters: {tr['params']:,} ({tr['percent']:.4g} % of {doc['model']['params_total']:,})")
    for k, v in tr["by_component"].items():
        if v:
            echo(f"  {k:<16} {v:>16,}")
    echo("per GPU:")
    for k, v in m["gpu_model_states_breakdown"].items():
        if v:
            echo(f"  {k:<16} {_gb(v):>12}")
    echo(f"  {'activations':<16} {_gb(m['gpu_activation_bytes']):>12}  ({m['tokens_per_gpu']:,} tokens per GPU)")
    echo(f"  {'logits':<16} {_gb(m['gpu_logits_bytes']):>12}")
    echo(f"  {'runtime':<16} {_gb(m['gpu_overhead_bytes']):>12}")
    echo(f"  {'allocator':<16} {_gb(m['gpu_allocator_reserve_bytes']):>12}  (calibrated reserve)")
    echo(f"  {'total':<16} {_gb(m['gpu_bytes']):>12}  of {_gb(doc['hardware']['gpu_memory_bytes'])}")
    if m["cpu_bytes_per_node"]:
        echo(f"host RAM per node: {_gb(m['cpu_bytes_per_node'])}")
    if m["nvme_bytes_per_node"]:
        echo(f"NVMe per node:     {_gb(m['nvme_bytes_per_node'])}")
    echo(f"verdict: {doc['verdict']} (binding: {doc['binding']})")
    lo, hi = t["step_seconds_band"]
    echo(
        f"step: {t['step_seconds']:,.2f} s ({lo:,.2f}–{hi:,.2f} s for MFU {t['mfu'][2]:.3g}–{t['mfu'][0]:.3g}), "
        f"{t['tokens_per_s']:,.0f} tokens/s, bound by {t['bound']}"
    )
    if t["offload_bytes_per_gpu"]:
        echo(f"  offload over PCIe: {_gb(t['offload_bytes_per_gpu'])} per GPU per step = {t['offload_seconds']:,.2f} s")
    if t["nvme_bytes_per_node"]:
        echo(f"  NVMe traffic: {_gb(t['nvme_bytes_per_node'])} per node per step = {t['nvme_seconds']:,.2f} s")
    echo(
        f"checkpoint: {_gb(c['bytes'])} ({', '.join(f'{k} {_gb(v)}' for k, v in c['components'].items())}); "
        f"{c['write_seconds']:,.1f} s to write at {c['write_gbs']:,.1f} GB/s; export {_gb(c['export_bytes'])}"
    )
    for n in doc["notes"]:
        echo(f"note: {n}")
    if doc["alternatives"]:
        echo("alternatives that fit:")
        for a in doc["alternatives"]:
            echo(f"  {a['label']:<44} {a['gpus']:>4} GPUs  {a['gpu_gb']:>8,.1f} GB/GPU  step {a['step_s']:,.2f} s")
    elif not doc["fits"]:
        echo("no alternative tried fits: add nodes, or shorten the sequence further")


@dataclass(frozen=True)
class FinetuneOptions:
    """`dsdeploy finetune`'s planning options with their defaults (the one set: `finetune` and
    `report --finetune` read theirs from FT)."""

    model: str | None = None
    method: str = "lora"
    lora_rank: int = 8
    lora_targets: str = "all-linear"
    precision: str = "mixed"
    optimizer: str = "adamw"
    sharding: str = "zero3"
    accelerator: str | None = None
    count: int = 8
    nodes: int = 1
    seq_len: int = 2048
    micro_batch: int = 1
    grad_accum: int = 1
    grad_ckpt: bool = True
    sp: int = 1
    tp: int = 1
    ep: int = 1
    expert_layout: str = "fused"
    logits: str = "hf"
    no_flash: bool = False
    host_ram_gb: float | None = None
    storage: str = "nvme-gen4"
    drives: int = 1


FT = FinetuneOptions()
DEFAULT_MODEL = "deepseek-r1"
DEFAULT_ACCELERATOR = "h100-sxm"

# ---- option declarations shared by `finetune` and `report --finetune` ----------------------------
Method = Annotated[str, typer.Option("--method", help="full, lora or qlora.")]
LoraRank = Annotated[int, typer.Option("--lora-rank", "-r", help="LoRA rank r.")]
LoraTargets = Annotated[
    str,
    typer.Option("--lora-targets", help="Comma-separated PEFT target_modules (all-linear, q_proj, gate_proj, …)."),
]
Precision = Annotated[
    str,
    typer.Option("--precision", help="mixed (bf16 + fp32 master, 16 B/param), bf16 (pure, 8 B/param) or fp32."),
]
Optimizer = Annotated[str, typer.Option("--optimizer", help="adamw, adamw-8bit or paged-adamw-8bit.")]
Sharding = Annotated[
    str,
    typer.Option(
        "--sharding",
        help="ddp, zero1, zero2, zero3, zero3-offload-cpu, zero3-offload-nvme, fsdp-full or fsdp-hybrid.",
    ),
]
SeqLen = Annotated[int, typer.Option("--seq-len", help="Sequence length (tokens).")]
MicroBatch = Annotated[int, typer.Option("--micro-batch", help="Micro-batch per GPU.")]
GradAccum = Annotated[int, typer.Option("--grad-accum", help="Gradient accumulation steps.")]
GradCkpt = Annotated[bool, typer.Option("--grad-ckpt/--no-grad-ckpt", help="Gradient checkpointing.")]
Sp = Annotated[int, typer.Option("--sp", help="Sequence parallel size (Ulysses).")]
ExpertLayout = Annotated[
    str, typer.Option("--expert-layout", help="fused (transformers ≥ 5) or per-expert (transformers < 5, Megatron).")
]
Logits = Annotated[
    str,
    typer.Option("--logits", help="How the loss holds the logits: hf (transformers ≥ 4.45), hf-legacy, fused (Liger)."),
]
NoFlash = Annotated[bool, typer.Option("--no-flash-attention", help="Eager attention (stores the scores).")]
HostRamGb = Annotated[float | None, typer.Option("--host-ram-gb", help="Host RAM per node, GB (default 1024).")]
Storage = Annotated[str, typer.Option("--storage", help="Storage class for checkpoints and NVMe offload.")]
Drives = Annotated[int, typer.Option("--drives", help="Drives per node (RAID0).")]


def finetune_setup(o: FinetuneOptions) -> FinetuneSetup:
    from dsdeploy.estimators.finetune import FinetuneSetup

    targets = tuple(t.strip() for t in o.lora_targets.split(",") if t.strip())
    return FinetuneSetup(
        method=o.method,
        precision=o.precision,
        optimizer=o.optimizer,
        sharding=o.sharding,
        gpus_per_node=o.count,
        nodes=o.nodes,
        seq_len=o.seq_len,
        micro_batch=o.micro_batch,
        grad_accum=o.grad_accum,
        grad_ckpt=o.grad_ckpt,
        sp=o.sp,
        tp=o.tp,
        ep=o.ep,
        lora_rank=o.lora_rank,
        lora_targets=targets,
        flash_attention=not o.no_flash,
        expert_layout=o.expert_layout,
        logits=o.logits,
    )


def finetune_plan(o: FinetuneOptions) -> tuple[ModelSpec, FinetuneSetup, dict[str, Any]]:
    """The model spec, the setup and the `dsdeploy finetune --json` document (without "configs") for
    these options: one path for `finetune` and `report --finetune`."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.planner import finetune as pf
    from dsdeploy.specs.model import load_model_spec

    setup = finetune_setup(o)
    pf.validate(setup)  # before any file is read: bad input gives one message
    cat = load_catalog()
    spec = load_model_spec(o.model or DEFAULT_MODEL)
    hw = pf.resolve_hardware(cat, o.accelerator or DEFAULT_ACCELERATOR, o.host_ram_gb, o.storage, o.drives)
    return spec, setup, pf.plan_dict(spec, setup, hw)


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        model: opt.Model = FT.model,
        method: Method = FT.method,
        lora_rank: LoraRank = FT.lora_rank,
        lora_targets: LoraTargets = FT.lora_targets,
        precision: Precision = FT.precision,
        optimizer: Optimizer = FT.optimizer,
        sharding: Sharding = FT.sharding,
        accelerator: opt.Accelerator = FT.accelerator,
        count: int = typer.Option(FT.count, "--count", "-n", help="GPUs per node."),
        nodes: int = typer.Option(FT.nodes, "--nodes", help="Nodes."),
        seq_len: SeqLen = FT.seq_len,
        micro_batch: MicroBatch = FT.micro_batch,
        grad_accum: GradAccum = FT.grad_accum,
        grad_ckpt: GradCkpt = FT.grad_ckpt,
        sp: Sp = FT.sp,
        tp: int = typer.Option(FT.tp, "--tp", help="Tensor parallel size."),
        ep: int = typer.Option(FT.ep, "--ep", help="Expert parallel size (MoE)."),
        expert_layout: ExpertLayout = FT.expert_layout,
        logits: Logits = FT.logits,
        no_flash: NoFlash = FT.no_flash,
        host_ram_gb: HostRamGb = FT.host_ram_gb,
        storage: Storage = FT.storage,
        drives: Drives = FT.drives,
        model_path: str | None = typer.Option(
            None, "--model-path", help="Model path or HF repo for the launch lines (default: the --model value)."
        ),
        emit: str = typer.Option("plan", "--emit", help=f"What to print: {', '.join(EMITS)}."),
        fsdp_version: int = typer.Option(2, "--fsdp-version", help="FSDP version for the accelerate config: 1 or 2."),
        as_json: opt.AsJson = False,
    ) -> None:
        """Plan a fine-tuning run: memory per GPU / host / NVMe, verdict, alternatives, step time, checkpoint size, configs."""
        from dsdeploy.engines import finetune_configs as fc
        from dsdeploy.errors import UserError
        from dsdeploy.estimators.finetune import expand_targets

        if emit not in EMITS:
            raise UserError(f"--emit '{emit}' is not one of {', '.join(EMITS)}")
        if fsdp_version not in (1, 2):
            raise UserError(f"--fsdp-version must be 1 or 2, got {fsdp_version}")
        o = FinetuneOptions(
            model=model, method=method, lora_rank=lora_rank, lora_targets=lora_targets, precision=precision,
            optimizer=optimizer, sharding=sharding, accelerator=accelerator, count=count, nodes=nodes,
            seq_len=seq_len, micro_batch=micro_batch, grad_accum=grad_accum, grad_ckpt=grad_ckpt, sp=sp, tp=tp,
            ep=ep, expert_layout=expert_layout, logits=logits, no_flash=no_flash, host_ram_gb=host_ram_gb,
            storage=storage, drives=drives,
        )  # fmt: skip
        spec, setup, doc = finetune_plan(o)
        targets = setup.lora_targets
        configs: dict = {}
        if emit != "plan" or as_json:
            if fc.is_deepspeed(setup):
                configs["deepspeed"] = fc.deepspeed_config(setup)
                configs["deepspeed_checks"] = fc.deepspeed_extra_checks(
                    configs["deepspeed"], fc.data_parallel_ranks(setup)
                )
            else:
                configs["deepspeed"] = None
            configs["accelerate"] = fc.accelerate_config(setup, spec, fsdp_version)
            configs["peft"] = (
                fc.lora_config_snippet(setup, sorted(expand_targets(spec, targets)), doc["trainable"]["notes"])
                if method != "full"
                else None
            )
            configs["launch"] = fc.launch_lines(setup, model_path or model or "deepseek-ai/DeepSeek-R1").to_dict()
        if as_json:
            typer.echo(json.dumps(doc | {"configs": configs}, indent=2, ensure_ascii=False))
            return
        if emit == "plan":
            _render(doc)
            return
        if emit in ("deepspeed", "all"):
            if configs["deepspeed"] is None and emit == "deepspeed":
                raise UserError(f"sharding '{sharding}' does not use DeepSpeed; use --emit accelerate")
            if configs["deepspeed"] is not None:
                typer.echo(json.dumps(configs["deepspeed"], indent=2))
        if emit in ("accelerate", "all"):
            typer.echo(fc.to_yaml(configs["accelerate"]))
        if emit in ("peft", "all"):
            if configs["peft"] is None and emit == "peft":
                raise UserError("--emit peft needs --method lora or qlora")
            if configs["peft"] is not None:
                typer.echo(configs["peft"])
        if emit in ("launch", "all"):
            for k, v in configs["launch"].items():
                if v:
                    typer.echo(f"# {k}\n{v}")
