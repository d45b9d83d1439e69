"""`dsdeploy finetune`: can this model be fine-tuned (full, LoRA, QLoRA) on this hardware, with what
sharding, and with which configs. An edge: the numbers come from `dsdeploy.planner.finetune`, the
configs from `dsdeploy.engines.finetune_configs`."""

from __future__ import annotations

import json

import typer

from dsdeploy.cli import options as opt

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


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        model: opt.Model = None,
        method: str = typer.Option("lora", "--method", help="full, lora or qlora."),
        lora_rank: int = typer.Option(8, "--lora-rank", "-r", help="LoRA rank r."),
        lora_targets: str = typer.Option(
            "all-linear",
            "--lora-targets",
            help="Comma-separated PEFT target_modules (all-linear, q_proj, gate_proj, …).",
        ),
        precision: str = typer.Option(
            "mixed", "--precision", help="mixed (bf16 + fp32 master, 16 B/param), bf16 (pure, 8 B/param) or fp32."
        ),
        optimizer: str = typer.Option("adamw", "--optimizer", help="adamw, adamw-8bit or paged-adamw-8bit."),
        sharding: str = typer.Option(
            "zero3",
            "--sharding",
            help="ddp, zero1, zero2, zero3, zero3-offload-cpu, zero3-offload-nvme, fsdp-full or fsdp-hybrid.",
        ),
        accelerator: opt.Accelerator = None,
        count: int = typer.Option(8, "--count", "-n", help="GPUs per node."),
        nodes: int = typer.Option(1, "--nodes", help="Nodes."),
        seq_len: int = typer.Option(2048, "--seq-len", help="Sequence length (tokens)."),
        micro_batch: int = typer.Option(1, "--micro-batch", help="Micro-batch per GPU."),
        grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps."),
        grad_ckpt: bool = typer.Option(True, "--grad-ckpt/--no-grad-ckpt", help="Gradient checkpointing."),
        sp: int = typer.Option(1, "--sp", help="Sequence parallel size (Ulysses)."),
        tp: int = typer.Option(1, "--tp", help="Tensor parallel size."),
        ep: int = typer.Option(1, "--ep", help="Expert parallel size (MoE)."),
        expert_layout: str = typer.Option(
            "fused", "--expert-layout", help="fused (transformers ≥ 5) or per-expert (transformers < 5, Megatron)."
        ),
        logits: str = typer.Option(
            "hf", "--logits", help="How the loss holds the logits: hf (transformers ≥ 4.45), hf-legacy, fused (Liger)."
        ),
        no_flash: bool = typer.Option(False, "--no-flash-attention", help="Eager attention (stores the scores)."),
        host_ram_gb: float | None = typer.Option(None, "--host-ram-gb", help="Host RAM per node, GB (default 1024)."),
        storage: str = typer.Option("nvme-gen4", "--storage", help="Storage class for checkpoints and NVMe offload."),
        drives: int = typer.Option(1, "--drives", help="Drives per node (RAID0)."),
        model_path: str | None = typer.Option(
            None, "--model-path", help="Model path or HF repo for the launch lines (default: the --model value)."
        ),
        emit: str = typer.Option("plan", "--emit", help=f"What to print: {', '.join(EMITS)}."),
        fsdp_version: int = typer.Option(2, "--fsdp-version", help="FSDP version for the accelerate config: 1 or 2."),
        as_json: opt.AsJson = False,
    ) -> None:
        """Plan a fine-tuning run: memory per GPU / host / NVMe, verdict, alternatives, step time, checkpoint size, configs."""
        from dsdeploy.catalog import load_catalog
        from dsdeploy.engines import finetune_configs as fc
        from dsdeploy.errors import UserError
        from dsdeploy.estimators.finetune import FinetuneSetup, expand_targets
        from dsdeploy.planner import finetune as pf
        from dsdeploy.specs.model import load_model_spec

        if emit not in EMITS:
            raise UserError(f"--emit '{emit}' is not one of {', '.join(EMITS)}")
        if fsdp_version not in (1, 2):
            raise UserError(f"--fsdp-version must be 1 or 2, got {fsdp_version}")
        targets = tuple(t.strip() for t in lora_targets.split(",") if t.strip())
        setup = FinetuneSetup(
            method=method,
            precision=precision,
            optimizer=optimizer,
            sharding=sharding,
            gpus_per_node=count,
            nodes=nodes,
            seq_len=seq_len,
            micro_batch=micro_batch,
            grad_accum=grad_accum,
            grad_ckpt=grad_ckpt,
            sp=sp,
            tp=tp,
            ep=ep,
            lora_rank=lora_rank,
            lora_targets=targets,
            flash_attention=not no_flash,
            expert_layout=expert_layout,
            logits=logits,
        )
        pf.validate(setup)  # before any file is read: bad input gives one message
        cat = load_catalog()
        spec = load_model_spec(model or "deepseek-r1")
        hw = pf.resolve_hardware(cat, accelerator or "h100-sxm", host_ram_gb, storage, drives)
        doc = pf.plan_dict(spec, setup, hw)
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
