"""Configs that run a fine-tuning plan: a DeepSpeed JSON, an accelerate YAML (FSDP1 or FSDP2 keys,
or DeepSpeed / multi-GPU), a PEFT `LoraConfig` snippet and the `deepspeed` / `torchrun` /
`accelerate launch` command lines. An edge: it writes what the planner decided; no arithmetic
beyond the batch product DeepSpeed itself requires.

`deepspeed_extra_checks` adds the rules DeepSpeed 0.19.8's `DeepSpeedConfig` does not enforce
(data/reference/finetune/notes.md §4.3): NVMe offload without `nvme_path`, parameter offload below
stage 3, unknown top-level keys, HF "auto" placeholders, and a `train_batch_size` that is not
micro × accumulation × data-parallel ranks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dsdeploy.estimators.finetune import FinetuneSetup
from dsdeploy.specs.model import ModelSpec

NVME_PATH = "/local_nvme/deepspeed_offload"
ZERO_STAGE = {
    "ddp": 0,
    "zero1": 1,
    "zero2": 2,
    "zero3": 3,
    "zero3-offload-cpu": 3,
    "zero3-offload-nvme": 3,
}
# DeepSpeed 0.19.8 top-level config keys (deepspeed/runtime/constants.py and config.py readers)
DEEPSPEED_TOP_KEYS = frozenset(
    {
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "steps_per_print",
        "optimizer",
        "scheduler",
        "fp16",
        "bf16",
        "amp",
        "gradient_clipping",
        "prescale_gradients",
        "gradient_predivide_factor",
        "sparse_gradients",
        "zero_optimization",
        "zero_allow_untested_optimizer",
        "zero_force_ds_cpu_optimizer",
        "activation_checkpointing",
        "aio",
        "wall_clock_breakdown",
        "dump_state",
        "flops_profiler",
        "communication_data_type",
        "seq_parallel_communication_data_type",
        "data_types",
        "checkpoint",
        "tensorboard",
        "wandb",
        "csv_monitor",
        "comms_logger",
        "elasticity",
        "pipeline",
        "compile",
        "memory_breakdown",
        "data_efficiency",
        "curriculum_learning",
        "compression_training",
        "autotuning",
        "nebula",
        "sequence_parallel_size",
        "disable_allgather",
        "torch_autocast",
    }
)
DECODER_LAYER = {
    "deepseek_v3": "DeepseekV3DecoderLayer",
    "deepseek_v2": "DeepseekV2DecoderLayer",
    "qwen2": "Qwen2DecoderLayer",
    "llama": "LlamaDecoderLayer",
    "mixtral": "MixtralDecoderLayer",
    "qwen2_moe": "Qwen2MoeDecoderLayer",
    "qwen3_moe": "Qwen3MoeDecoderLayer",
}


def is_deepspeed(setup: FinetuneSetup) -> bool:
    return setup.sharding in ZERO_STAGE and setup.sharding != "ddp"


def data_parallel_ranks(setup: FinetuneSetup) -> int:
    """Ranks that see different data: DeepSpeed divides the world by sequence parallel too."""
    return max(1, setup.dp // setup.sp)


def deepspeed_config(setup: FinetuneSetup, nvme_path: str = NVME_PATH) -> dict:
    """A standalone DeepSpeed JSON (no HF "auto" placeholders) for a ZeRO sharding mode or DDP (stage 0)."""
    stage = ZERO_STAGE.get(setup.sharding)
    if stage is None:
        raise ValueError(f"sharding '{setup.sharding}' is FSDP: emit an accelerate FSDP config instead")
    zero: dict = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": 500_000_000,
    }
    if stage >= 2:
        zero["allgather_bucket_size"] = 500_000_000
    if stage == 3:
        zero |= {
            "stage3_prefetch_bucket_size": 50_000_000,
            "stage3_param_persistence_threshold": 100_000,
            "stage3_max_live_parameters": 1_000_000_000,
            "stage3_gather_16bit_weights_on_model_save": True,
            "sub_group_size": 1_000_000_000,
        }
        zero.pop("allgather_bucket_size", None)
    cfg: dict = {
        "train_micro_batch_size_per_gpu": setup.micro_batch,
        "gradient_accumulation_steps": setup.grad_accum,
        "train_batch_size": setup.micro_batch * setup.grad_accum * data_parallel_ranks(setup),
        "gradient_clipping": 1.0,
        "steps_per_print": 10,
        "zero_optimization": zero,
    }
    if setup.precision in ("mixed", "bf16"):
        cfg["bf16"] = {"enabled": True}
    if setup.optimizer == "adamw":
        cfg["optimizer"] = {
            "type": "AdamW",
            "params": {
                "lr": 1e-5 if setup.method == "full" else 1e-4,
                "betas": [0.9, 0.95],
                "eps": 1e-8,
                "weight_decay": 0.0,
            },
        }
    else:
        cfg["zero_allow_untested_optimizer"] = True  # the script builds the bitsandbytes optimizer itself
    if setup.offload == "cpu":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    elif setup.offload == "nvme":
        zero["offload_optimizer"] = {"device": "nvme", "nvme_path": nvme_path, "pin_memory": True}
        zero["offload_param"] = {"device": "nvme", "nvme_path": nvme_path, "pin_memory": True}
        cfg["aio"] = {
            "block_size": 1_048_576,
            "queue_depth": 8,
            "single_submit": False,
            "overlap_events": True,
        }
    if setup.sp > 1:
        cfg["sequence_parallel_size"] = setup.sp
    return cfg


def deepspeed_extra_checks(cfg: dict, world_size: int | None = None) -> list[str]:
    """What DeepSpeed's own validation accepts but fails at run time or silently ignores."""
    errs: list[str] = []
    unknown = sorted(set(cfg) - DEEPSPEED_TOP_KEYS)
    if unknown:
        errs.append(f"unknown top-level key(s) {', '.join(unknown)} (DeepSpeed ignores them silently)")
    zero = cfg.get("zero_optimization") or {}
    stage = zero.get("stage", 0)
    for k in ("offload_param", "offload_optimizer"):
        off = zero.get(k) or {}
        if off.get("device") == "nvme" and not off.get("nvme_path"):
            errs.append(f"zero_optimization.{k} offloads to NVMe but has no nvme_path (fails only at run time)")
    if (zero.get("offload_param") or {}).get("device") not in (None, "none") and stage != 3:
        errs.append(f"zero_optimization.offload_param needs stage 3; stage {stage} ignores it silently")

    def walk(x, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}.{k}" if path else k)
        elif x == "auto":
            errs.append(
                f'{path} is "auto": only the HF Trainer integration fills it; a standalone config needs a number'
            )

    walk(cfg, "")
    if world_size is not None and all(
        isinstance(cfg.get(k), int)
        for k in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")
    ):
        want = cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"] * world_size
        if cfg["train_batch_size"] != want:
            errs.append(
                f"train_batch_size {cfg['train_batch_size']} ≠ micro {cfg['train_micro_batch_size_per_gpu']} × "
                f"accumulation {cfg['gradient_accumulation_steps']} × {world_size} data-parallel ranks = {want}"
            )
    return errs


def accelerate_config(
    setup: FinetuneSetup, spec: ModelSpec, fsdp_version: int = 2, ds_config_file: str = "ds_config.json"
) -> dict:
    """accelerate's config file (`accelerate launch --config_file`) as a dict. FSDP1 and FSDP2 keys
    differ: FSDP2 has no `fsdp_sharding_strategy` (HYBRID_SHARD is rejected: "reshard_after_forward
    set to None"); it takes `fsdp_reshard_after_forward` and expresses hybrid sharding as a 2-D mesh
    (`parallelism_config_dp_replicate_size` × `parallelism_config_dp_shard_size`)."""
    if fsdp_version not in (1, 2):
        raise ValueError("fsdp_version must be 1 or 2")
    cfg: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "bf16" if setup.precision in ("mixed", "bf16") else "no",
        "num_machines": setup.nodes,
        "num_processes": setup.gpus,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "main_process_port": 29500,
    }
    if setup.sharding.startswith("fsdp"):
        layer = DECODER_LAYER.get(spec.arch, "DecoderLayer")
        fsdp: dict = {
            "fsdp_version": fsdp_version,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": layer,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_offload_params": False,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_activation_checkpointing": setup.grad_ckpt,
        }
        if fsdp_version == 1:
            fsdp |= {
                "fsdp_sharding_strategy": "HYBRID_SHARD" if setup.sharding == "fsdp-hybrid" else "FULL_SHARD",
                "fsdp_backward_prefetch": "BACKWARD_PRE",
                "fsdp_forward_prefetch": False,
                "fsdp_sync_module_states": True,
                "fsdp_use_orig_params": True,
            }
        else:
            fsdp["fsdp_reshard_after_forward"] = True
            if setup.sharding == "fsdp-hybrid":
                cfg["parallelism_config"] = {
                    "parallelism_config_dp_replicate_size": setup.nodes,
                    "parallelism_config_dp_shard_size": setup.gpus_per_node,
                }
        cfg["distributed_type"] = "FSDP"
        cfg["fsdp_config"] = fsdp
    elif is_deepspeed(setup):
        cfg["distributed_type"] = "DEEPSPEED"
        cfg["deepspeed_config"] = {
            "deepspeed_config_file": ds_config_file,
            "deepspeed_multinode_launcher": "standard",
            "zero3_init_flag": setup.sharding.startswith("zero3"),
        }
        cfg.pop("mixed_precision")  # taken from the DeepSpeed JSON when a config file is given
    else:
        cfg["distributed_type"] = "MULTI_GPU" if setup.gpus > 1 else "NO"
    return cfg


def to_yaml(d: dict, indent: int = 0) -> str:
    """A small YAML writer for the flat/nested scalars accelerate's config uses (no dependency)."""
    out = []
    pad = " " * indent
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k}:")
            out.append(to_yaml(v, indent + 2))
        else:
            out.append(f"{pad}{k}: {json.dumps(v)}")
    return "\n".join(out)


def lora_config_snippet(setup: FinetuneSetup, targets_resolved: list[str], notes: list[str] | None = None) -> str:
    """Python for PEFT: the LoraConfig (and, for QLoRA, the bitsandbytes 4-bit load)."""
    lines = []
    if setup.method == "qlora":
        lines += [
            "import torch",
            "from transformers import BitsAndBytesConfig",
            "bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4',",
            "                         bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16"
            + (
                ",\n                         bnb_4bit_quant_storage=torch.bfloat16)  # sharded 4-bit weights (ZeRO-3/FSDP)"
                if setup.sharding.startswith(("zero3", "fsdp"))
                else ")"
            ),
            "# AutoModelForCausalLM.from_pretrained(MODEL, quantization_config=bnb, dtype=torch.bfloat16)",
        ]
    targets = list(setup.lora_targets)
    tm = repr(targets[0]) if targets == ["all-linear"] else repr(targets)
    lines += [
        "from peft import LoraConfig",
        "lora = LoraConfig(",
        f"    r={setup.lora_rank},",
        f"    lora_alpha={2 * setup.lora_rank},",
        "    lora_dropout=0.0,",
        f"    target_modules={tm},",
        "    task_type='CAUSAL_LM',",
        ")",
        f"# modules hit: {', '.join(targets_resolved)}",
    ]
    lines += [f"# {n}" for n in notes or []]
    return "\n".join(lines)


@dataclass(frozen=True)
class LaunchLines:
    deepspeed: str | None
    torchrun: str
    accelerate: str

    def to_dict(self) -> dict:
        return {"deepspeed": self.deepspeed, "torchrun": self.torchrun, "accelerate": self.accelerate}


def train_args(setup: FinetuneSetup, model: str, ds_config_file: str | None) -> str:
    """HF Trainer flags for a `train.py` built on `transformers.Trainer` / TRL's SFTTrainer."""
    a = [
        f"--model_name_or_path {model}",
        f"--per_device_train_batch_size {setup.micro_batch}",
        f"--gradient_accumulation_steps {setup.grad_accum}",
        f"--max_length {setup.seq_len}",
        "--bf16" if setup.precision in ("mixed", "bf16") else "",
        "--gradient_checkpointing --gradient_checkpointing_kwargs '{\"use_reentrant\": false}'"
        if setup.grad_ckpt
        else "",
        f"--optim {'adamw_torch' if setup.optimizer == 'adamw' else 'paged_adamw_8bit' if setup.optimizer.startswith('paged') else 'adamw_bnb_8bit'}",
        f"--use_peft --lora_r {setup.lora_rank}" if setup.method != "full" else "",
        "--load_in_4bit" if setup.method == "qlora" else "",
        f"--deepspeed {ds_config_file}" if ds_config_file else "",
    ]
    return " ".join(x for x in a if x)


def launch_lines(setup: FinetuneSetup, model: str, script: str = "train.py") -> LaunchLines:
    ds = is_deepspeed(setup)
    ds_file = "ds_config.json" if ds else None
    args = train_args(setup, model, ds_file)
    multi = setup.nodes > 1
    deepspeed = (
        f"deepspeed --num_nodes {setup.nodes} --num_gpus {setup.gpus_per_node}"
        + (" --hostfile hostfile" if multi else "")
        + f" {script} {args}"
        if ds
        else None
    )
    torchrun = (
        f"torchrun --nnodes {setup.nodes} --nproc-per-node {setup.gpus_per_node}"
        + (" --node-rank $NODE_RANK --master-addr $MASTER_ADDR --master-port 29500" if multi else "")
        + f" {script} {train_args(setup, model, ds_file)}"
    )
    acc = (
        f"accelerate launch --config_file accelerate.yaml --num_machines {setup.nodes} --num_processes {setup.gpus}"
        + (" --machine_rank $NODE_RANK --main_process_ip $MASTER_ADDR --main_process_port 29500" if multi else "")
        + f" {script} {train_args(setup, model, None)}"
    )
    return LaunchLines(deepspeed, torchrun, acc)
