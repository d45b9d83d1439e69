"""Real LoRA and full fine-tuning of the tiny DeepSeek-V3 model on the CPU (torch, transformers,
peft), each in a child process (scripts/finetune_tiny.py): PEFT's trainable-parameter count must
equal the planner's exactly, and the loss must fall. Peak RSS against the prediction is a bench
(bench/finetune_rss.py, results in docs/finetune-accuracy.md), not a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsdeploy.estimators import finetune as ft
from dsdeploy.specs.model import load_model_spec

pytest.importorskip("torch")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "src/dsdeploy/tinymodel/artifacts/hf"
SPEC = load_model_spec(str(TINY))
MLA = "q_a_proj,q_b_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj"


def train(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts/finetune_tiny.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "targets",
    [MLA, MLA + ",gate_proj,up_proj,down_proj", "all-linear"],
    ids=["attention", "attention+mlp-names", "all-linear"],
)
def test_lora_trainable_count_is_exact_and_loss_falls(targets):
    out = train("--method", "lora", "--targets", targets, "--steps", "3", "--batch", "2", "--seq", "32")
    predicted = ft.lora_trainable(SPEC, 8, tuple(targets.split(",")) if targets != "all-linear" else ("all-linear",))
    assert out["params_total"] == SPEC.params_total
    assert out["trainable"] == predicted.trainable
    assert out["losses"][-1] < out["losses"][0]


def test_full_finetune_with_checkpointing_trains_every_parameter_and_loss_falls():
    out = train("--method", "full", "--steps", "3", "--batch", "2", "--seq", "32", "--grad-ckpt")
    assert out["trainable"] == out["params_total"] == SPEC.params_total
    assert out["losses"][-1] < out["losses"][0]


@pytest.mark.deepspeed
def test_deepspeed_zero3_cpu_offload_step_with_the_emitted_config():
    """One DeepSpeed ZeRO-3 + CPU-offload run on the CPU accelerator (gloo) with the DeepSpeed JSON
    `dsdeploy finetune` emits (scripts/finetune_tiny_zero3.py). The first run on a machine
    JIT-compiles DeepSpeed's shm and cpu_adam ops (about 5 minutes on 2 busy cores, 80 s idle);
    later runs take about 13 s."""
    pytest.importorskip("deepspeed")
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts/finetune_tiny_zero3.py"), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["zero_stage"] == 3 and out["backend"] == "gloo" and out["optimizer"] == "DeepSpeedCPUAdam"
    assert out["losses"][-1] < out["losses"][0]
