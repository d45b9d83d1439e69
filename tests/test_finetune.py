"""The fine-tuning planner against numbers worked out by hand from cited facts
(data/reference/finetune/notes.md), hypothesis invariants, config validation with DeepSpeed's and
accelerate's own classes, and the CLI's bad-input messages."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsdeploy.catalog import load_catalog
from dsdeploy.engines import finetune_configs as fc
from dsdeploy.estimators import finetune as ft
from dsdeploy.planner import finetune as pf
from dsdeploy.specs.model import load_model_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "src/dsdeploy/tinymodel/artifacts/hf"
R1 = load_model_spec("deepseek-r1")
TINY_SPEC = load_model_spec(str(TINY))
CAT = load_catalog()
MLA = ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")


# ------------------------------------------------------------------ LoRA counts (notes §1.5, App. A)
def test_r1_rank8_lora_counts_match_the_notes():
    # attention + dense + shared at r = 8: 63.2M = 0.009 %; with routed experts 2,496M = 0.37 %
    att_dense_shared = ft.lora_trainable_flat(R1, 8, with_routed_experts=False)
    with_experts = ft.lora_trainable_flat(R1, 8, with_routed_experts=True)
    # by hand: per layer attention r·Σ(in+out) = 8·(8704 + 26112 + 7744 + 33280 + 23552) = 795,136 × 61
    # dense 3 layers × 3 × 8 × (7168 + 18432); shared 58 × 3 × 8 × (7168 + 2048)
    assert att_dense_shared == 795_136 * 61 + 3 * 3 * 8 * 25_600 + 58 * 3 * 8 * 9_216 == 63_175_168
    # routed: 58 layers × 256 experts × 8 × (7168 + 2·2048 + 2048 + 7168)
    assert with_experts - att_dense_shared == 58 * 256 * 8 * 20_480
    assert 100 * att_dense_shared / R1.params_total == pytest.approx(0.0094, abs=0.0001)
    assert 100 * with_experts / R1.params_total == pytest.approx(0.372, abs=0.001)


def test_peft_remap_on_fused_experts_tiny_model_by_hand():
    # tiny: h 256, 3 layers (1 dense), q_lora 128, kv_lora 512, rope 64, nope 128, v 128, 2 heads,
    # 8 experts of width 64. Attention per layer: 8·((256+128)+(128+384)+(256+576)+(512+512)+(256+256)) = 26,112
    att = ft.lora_trainable(TINY_SPEC, 8, MLA)
    assert att.trainable == 3 * 26_112 == 78_336
    # + gate/up/down: gate_up at 2r per expert 16·8·(256 + 128) + down 8·8·(64 + 256), in 2 MoE layers;
    # the dense layer-0 MLP and the shared expert get nothing (PEFT 0.21 remap)
    mlp = ft.lora_trainable(TINY_SPEC, 8, (*MLA, "gate_proj", "up_proj", "down_proj"))
    assert mlp.trainable == 78_336 + 2 * (16 * 8 * 384 + 8 * 8 * 320) == 217_600
    assert mlp.fused_expert_remap and mlp.by_component["dense_mlp"] == 0 and mlp.by_component["shared_experts"] == 0
    # all-linear adds the router: 2 layers × 8·(256 + 8)
    assert ft.lora_trainable(TINY_SPEC, 8, ("all-linear",)).trainable == 217_600 + 2 * 8 * 264 == 221_824
    # transformers < 5 (per-expert modules): r·(in+out) everywhere, dense and shared included
    per = ft.lora_trainable(TINY_SPEC, 8, ("gate_proj", "up_proj", "down_proj"), expert_layout="per-expert")
    assert per.trainable == 8 * (3 * (256 + 512) + 2 * 9 * 3 * (256 + 64))


# ------------------------------------------------------------------ model states (ZeRO paper §3)
def test_zero_paper_worked_example_7_5b_on_64():
    # Rajbhandari et al. Fig. 1: Ψ = 7.5B, N = 64, K = 12 → 120 GB, 31.4 GB, 16.6 GB, 1.9 GB
    spec = replace(TINY_SPEC)
    s = ft.FinetuneSetup(method="full", precision="mixed", gpus_per_node=8, nodes=8)
    psi = spec.params_total
    for sharding, per_param in (
        ("ddp", 16),
        ("zero1", 4 + 12 / 64),
        ("zero2", 2 + 14 / 64),
        ("zero3", 16 / 64),
    ):
        ms = ft.model_states(spec, replace(s, sharding=sharding))
        assert ms.gpu_bytes - ms.gather_bytes == pytest.approx(per_param * psi, rel=1e-6), sharding
    assert 7.5e9 * (4 + 12 / 64) / 1e9 == pytest.approx(31.4, abs=0.1)
    assert 7.5e9 * (2 + 14 / 64) / 1e9 == pytest.approx(16.6, abs=0.1)


def test_pure_bf16_is_8_bytes_per_param_and_fused_experts_set_the_gather():
    s = ft.FinetuneSetup(method="full", precision="bf16", sharding="ddp", gpus_per_node=1)
    assert ft.model_states(TINY_SPEC, s).gpu_bytes == 8 * TINY_SPEC.params_total
    # V3 fused experts: 256 · 3 · 7168 · 2048 = 11.27B parameters in one module (notes §1.2)
    assert ft.largest_module_params(R1, "fused") == 256 * 3 * 7168 * 2048
    assert ft.largest_module_params(R1, "per-expert") == 129_280 * 7168  # the embedding


def test_r1_full_zero3_offload_states_on_host():
    # 16 B/param · 671B spread over 32 nodes ≈ 335.5 GB per node on the host, ~0 on the GPU but the gather
    s = ft.FinetuneSetup(method="full", sharding="zero3-offload-cpu", nodes=32, seq_len=32768, sp=4)
    ms = ft.model_states(R1, s, None)
    assert ms.cpu_bytes_per_node == pytest.approx(16 * R1.params_total / 32, rel=1e-6)
    assert ms.gpu_bytes == ms.gather_bytes == 2 * 2 * 256 * 3 * 7168 * 2048


# ------------------------------------------------------------------ activations (Korthikanti §4)
def test_activation_terms_by_hand_for_a_dense_mha_layer():
    # a dense MHA model with I = 4h, flash attention, no dropout: per token attention 2·(h + h + 2h + h) + 2h
    # (norm) + 4a (lse), MLP 2h + 2·(h + 12h); Korthikanti's 34 less masks (2) and scores = 32 → ours 40 with SwiGLU
    cfg = dict(
        model_type="llama", hidden_size=1024, num_hidden_layers=2, num_attention_heads=8, vocab_size=1000,
        intermediate_size=4096,
    )  # fmt: skip
    from dsdeploy.specs.model import from_hf_config

    spec = from_hf_config(cfg)
    h = 1024
    assert ft.attention_bytes_per_token(spec, True, 512) == 2 * 5 * h + 2 * h + 4 * 8
    assert ft.mlp_bytes_per_token(spec, True) == 2 * h + 2 * (h + 3 * 4096)
    s = ft.FinetuneSetup(method="full", sharding="ddp", gpus_per_node=1, seq_len=512, grad_ckpt=False)
    a = ft.activations(spec, s)
    assert a.logits_bytes == 512 * 1000 * 6
    assert a.stored_bytes == 512 * 2 * (2 * 5 * h + 2 * h + 32 + 2 * h + 2 * (h + 3 * 4096))
    ck = ft.activations(spec, replace(s, grad_ckpt=True))
    assert ck.stored_bytes == 512 * 2 * h * 2  # the layer inputs only


def test_mla_widens_attention_about_2_9x_for_v3():
    # notes §1.4: q,k take a·(d_nope+d_rope) = 24,576 each, v and the o input a·d_v = 16,384 → 2.857 × 4h
    qkvo = 2 * 128 * 192 + 2 * 128 * 128
    assert qkvo / (4 * 7168) == pytest.approx(2.857, abs=0.001)
    assert ft.attention_bytes_per_token(R1, True, 4096) > 2 * qkvo


# ------------------------------------------------------------------ invariants
setups = st.builds(
    ft.FinetuneSetup,
    method=st.sampled_from(ft.METHODS),
    precision=st.sampled_from(ft.PRECISIONS),
    sharding=st.sampled_from(("zero3", "zero3-offload-cpu", "fsdp-full")),
    gpus_per_node=st.sampled_from((1, 2, 4, 8)),
    nodes=st.integers(1, 8),
    seq_len=st.sampled_from((512, 1024, 4096, 32768)),
    micro_batch=st.integers(1, 4),
    grad_ckpt=st.booleans(),
    lora_rank=st.sampled_from((1, 8, 64)),
)


@settings(max_examples=60, deadline=None)
@given(setups, st.integers(1, 4))
def test_more_gpus_under_zero3_never_raise_per_gpu_states(s, k):
    if s.method == "qlora":
        s = replace(s, method="lora")
    lora = ft.lora_trainable(R1, s.lora_rank, s.lora_targets) if s.method != "full" else None
    more = replace(s, nodes=s.nodes * (k + 1))
    assert ft.model_states(R1, more, lora).gpu_bytes <= ft.model_states(R1, s, lora).gpu_bytes


@settings(max_examples=60, deadline=None)
@given(setups)
def test_longer_sequence_never_lowers_activation_memory(s):
    longer = replace(s, seq_len=s.seq_len * 2)
    for spec in (R1, TINY_SPEC):
        assert ft.activations(spec, longer).total_bytes >= ft.activations(spec, s).total_bytes


@settings(max_examples=40, deadline=None)
@given(setups)
def test_checkpointing_never_raises_memory_and_lora_never_exceeds_full_states(s):
    if s.method == "qlora":
        s = replace(s, method="lora")
    on, off = replace(s, grad_ckpt=True), replace(s, grad_ckpt=False)
    assert ft.activations(R1, on).total_bytes <= ft.activations(R1, off).total_bytes
    full = ft.model_states(R1, replace(s, method="full"))
    lora = ft.model_states(R1, replace(s, method="lora"), ft.lora_trainable(R1, s.lora_rank, s.lora_targets))
    assert lora.gpu_bytes + lora.cpu_bytes_per_node <= full.gpu_bytes + full.cpu_bytes_per_node


# ------------------------------------------------------------------ planner
def test_planner_verdict_binding_and_alternatives():
    hw = pf.resolve_hardware(CAT, "h100-sxm", host_ram_gb=2000)
    q32 = load_model_spec("r1-distill-qwen-32b")
    # 32.8B full fine-tuning under ZeRO-2 on 8 GPUs: 2 + 14/8 B/param = 123 GB per GPU; ZeRO-3 66 GB + gathers + activations > 80
    s32 = ft.FinetuneSetup(method="full", sharding="zero2", seq_len=4096)
    doc = pf.plan_dict(q32, s32, hw)
    assert not doc["fits"] and doc["binding"] == "gpu-memory"
    labels = [a["label"] for a in doc["alternatives"]]
    assert "sharding zero3-offload-cpu" in labels and all(a["fits"] for a in doc["alternatives"])
    s = ft.FinetuneSetup(method="full", sharding="zero3", nodes=1, seq_len=32768)
    # the published case: R1 full fine-tuning at 32k, 16 nodes × 8 H100, ZeRO-3 offload, SP 8 (SO1)
    ok = pf.plan_dict(R1, replace(s, sharding="zero3-offload-cpu", nodes=16, sp=8, expert_layout="per-expert"), hw)
    assert ok["fits"], ok["verdict"]
    # checkpoint: fp32 master + Adam moments = 12 B/param = 8.05 TB (SO9 measured ~7.4 TB(iB))
    assert ok["checkpoint"]["bytes"] == 12 * R1.params_total
    assert 12 * R1.params_total / 1024**4 == pytest.approx(7.32, abs=0.01)


def test_stable_json_keys():
    hw = pf.resolve_hardware(CAT, "a100-sxm-80g")
    doc = pf.plan_dict(load_model_spec("r1-distill-qwen-32b"), ft.FinetuneSetup(gpus_per_node=4), hw)
    assert set(doc) == {
        "version", "model", "setup", "hardware", "trainable", "memory", "fits", "binding", "verdict", "time",
        "checkpoint", "alternatives", "notes",
    }  # fmt: skip
    assert {
        "gpu_bytes",
        "cpu_bytes_per_node",
        "nvme_bytes_per_node",
        "gpu_activation_bytes",
        "gpu_logits_bytes",
    } <= set(doc["memory"])
    assert {"step_seconds", "step_seconds_band", "tokens_per_s", "mfu", "offload_bytes_per_gpu", "bound"} <= set(
        doc["time"]
    )
    json.dumps(doc)


def test_offload_traffic_by_hand():
    # ZeRO-3 CPU offload, full: per micro-step each GPU fetches its bf16 partition twice (fwd + bwd)
    # and writes back bf16 grads: (2·2 + 2)·Ψ/N bytes
    s = ft.FinetuneSetup(method="full", sharding="zero3-offload-cpu", nodes=16, grad_accum=2)
    t = ft.step_time(R1, s, 989e12, 63.0, 7.0, R1.params_total)
    assert t.offload_bytes_per_gpu == pytest.approx(2 * 6 * R1.params_total / 128, rel=1e-6)
    assert t.offload_seconds == pytest.approx(t.offload_bytes_per_gpu / 63e9)


# ------------------------------------------------------------------ configs: DeepSpeed's own validation
ds_config = pytest.importorskip("deepspeed.runtime.config")


@pytest.mark.parametrize("sharding", [s for s in ft.SHARDINGS if not s.startswith("fsdp")])
def test_emitted_deepspeed_config_passes_deepspeed(sharding):
    s = ft.FinetuneSetup(sharding=sharding, gpus_per_node=8, nodes=2, micro_batch=2, grad_accum=4, sp=2)
    cfg = fc.deepspeed_config(s)
    assert fc.deepspeed_extra_checks(cfg, fc.data_parallel_ranks(s)) == []
    one = copy.deepcopy(cfg)  # DeepSpeedConfig on one process checks the batch product for world = 1
    one["train_batch_size"] = one["train_micro_batch_size_per_gpu"] * one["gradient_accumulation_steps"]
    d = ds_config.DeepSpeedConfig(one)
    assert d.zero_optimization_stage == fc.ZERO_STAGE[sharding]
    assert cfg["train_batch_size"] == 2 * 4 * 8  # 16 GPUs / SP 2


def test_deepspeed_checks_catch_what_deepspeed_accepts():
    bad = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 2, "offload_param": {"device": "nvme"}},
        "my_typo_key": 1,
    }
    ds_config.DeepSpeedConfig(copy.deepcopy(bad))  # DeepSpeed itself accepts all three problems
    errs = " | ".join(fc.deepspeed_extra_checks(bad))
    assert "no nvme_path" in errs and "needs stage 3" in errs and "my_typo_key" in errs
    assert fc.deepspeed_extra_checks({"train_micro_batch_size_per_gpu": "auto"})


def test_seed_article_deepspeed_config_has_no_aio_block_but_passes():
    seed = {
        "zero_optimization": {
            "stage": 3,
            "offload_optimizer": {"device": "cpu", "pin_memory": True},
            "offload_param": {"device": "nvme", "nvme_path": "/mnt/ssd/deepseek_offload"},
        }
    }
    assert fc.deepspeed_extra_checks(seed) == []


accel = pytest.importorskip("accelerate")


@pytest.mark.parametrize("sharding", ft.SHARDINGS)
@pytest.mark.parametrize("version", [1, 2])
def test_emitted_accelerate_config_passes_accelerate(tmp_path, sharding, version):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    s = ft.FinetuneSetup(sharding=sharding, gpus_per_node=8, nodes=2)
    cfg = fc.accelerate_config(s, R1, version)
    p = tmp_path / "accelerate.yaml"
    p.write_text(fc.to_yaml(cfg) + "\n")
    loaded = load_config_from_file(str(p))
    assert loaded.num_processes == 16
    known = {a.dest for a in launch_command_parser()._actions}
    for section in ("fsdp_config", "parallelism_config"):
        for k in cfg.get(section, {}):
            assert k in known, k
    if sharding.startswith("fsdp"):
        from accelerate.utils import FullyShardedDataParallelPlugin

        f = cfg["fsdp_config"]
        kw = dict(
            fsdp_version=version, auto_wrap_policy=f["fsdp_auto_wrap_policy"], state_dict_type=f["fsdp_state_dict_type"]
        )
        if version == 1:
            kw["sharding_strategy"] = f["fsdp_sharding_strategy"]
        else:
            kw["reshard_after_forward"] = f["fsdp_reshard_after_forward"]
        FullyShardedDataParallelPlugin(**kw)


def test_fsdp2_rejects_hybrid_shard_so_we_emit_a_mesh():
    from accelerate.utils import FullyShardedDataParallelPlugin

    with pytest.raises(ValueError):
        FullyShardedDataParallelPlugin(fsdp_version=2, sharding_strategy="HYBRID_SHARD")
    cfg = fc.accelerate_config(ft.FinetuneSetup(sharding="fsdp-hybrid", nodes=2), R1, 2)
    assert "fsdp_sharding_strategy" not in cfg["fsdp_config"]
    assert cfg["parallelism_config"] == {
        "parallelism_config_dp_replicate_size": 2,
        "parallelism_config_dp_shard_size": 8,
    }


# ------------------------------------------------------------------ CLI
def cli(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "finetune", *args], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    "args,msg",
    [
        (("--lora-rank", "0"), "LoRA rank must be at least 1"),
        (("--seq-len", "-4"), "sequence length must be at least 1"),
        (("--sharding", "zero4"), "stages 0–3"),
        (("--sharding", "megatron"), "sharding 'megatron' is not one of"),
        (("--micro-batch", "0"), "micro-batch must be at least 1"),
    ],
)
def test_cli_bad_input_one_message_exit_2(args, msg):
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_json_and_emit():
    r = cli("-m", "r1-distill-qwen-32b", "-a", "a100-sxm-80g", "-n", "4", "--seq-len", "4096", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["fits"] and doc["configs"]["deepspeed"]["zero_optimization"]["stage"] == 3
    r = cli("--sharding", "fsdp-hybrid", "--nodes", "2", "--emit", "accelerate", "--fsdp-version", "1")
    assert r.returncode == 0 and "HYBRID_SHARD" in r.stdout


def test_qlora_weights_hybrid_shard_ep_and_nvme_by_hand():
    from dsdeploy.specs.model import from_hf_config

    dense = from_hf_config(
        dict(model_type="llama", hidden_size=512, num_hidden_layers=2, num_attention_heads=8, vocab_size=1000,
             intermediate_size=1024)
    )  # fmt: skip
    comp = dense.params_by_component()
    kept = comp["embedding"] + comp["lm_head"] + comp["other"]
    # QLoRA (arXiv:2305.14314): NF4 + 0.127 bit of double-quantised constants; peft's
    # prepare_model_for_kbit_training casts what stays unquantised to fp32
    q = ft.FinetuneSetup(method="qlora", sharding="ddp", gpus_per_node=1, lora_rank=4, lora_targets=("q_proj",))
    lora = ft.lora_trainable(dense, 4, ("q_proj",))
    assert lora.trainable == 2 * 4 * (512 + 512)
    ms = ft.model_states(dense, q, lora)
    assert ms.breakdown["weights"] == int(kept * 4 + (dense.params_total - kept) * 4.127 / 8 + 4 * lora.trainable)
    # FSDP hybrid shards inside a node only: 16 B/param / 8 GPUs, whatever the node count
    h = ft.FinetuneSetup(method="full", sharding="fsdp-hybrid", gpus_per_node=8, nodes=4)
    hs = ft.model_states(dense, h)
    assert hs.gpu_bytes - hs.gather_bytes == pytest.approx(16 * dense.params_total / 8, abs=4)
    # NVMe offload: the node's shards of weights + grads + master + moments go to NVMe
    nv = ft.model_states(R1, ft.FinetuneSetup(method="full", sharding="zero3-offload-nvme", nodes=32))
    assert nv.nvme_bytes_per_node == pytest.approx(16 * R1.params_total / 32, rel=1e-6) and nv.cpu_bytes_per_node == 0
    # expert parallel: routed experts split over ep, the rest replicated (DDP, no tp)
    routed = R1.params_by_component()["routed_experts"]
    ep = ft.model_states(R1, ft.FinetuneSetup(method="full", precision="bf16", sharding="ddp", gpus_per_node=8, ep=8))
    assert ep.gpu_bytes == pytest.approx(8 * (R1.params_total - routed) + 8 * routed / 8, rel=1e-6)


def test_cli_emit_peft_needs_lora_and_deepspeed_needs_zero():
    r = cli("--method", "full", "--emit", "peft")
    assert r.returncode == 2 and "--emit peft needs --method lora or qlora" in r.stderr
    r = cli("--sharding", "fsdp-full", "--emit", "deepspeed")
    assert r.returncode == 2 and "does not use DeepSpeed" in r.stderr


def test_known_top_level_keys_are_deepspeeds_own():
    # every key the "unknown top-level key" check accepts is a string literal in DeepSpeed's source
    import glob
    import os

    import deepspeed

    root = os.path.dirname(deepspeed.__file__)
    src = "".join(open(f, encoding="utf-8").read() for f in glob.glob(f"{root}/**/*.py", recursive=True))
    missing = [k for k in fc.DEEPSPEED_TOP_KEYS if f'"{k}"' not in src and f"'{k}'" not in src]
    assert missing == []
