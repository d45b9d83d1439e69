"""Review findings on `dsdeploy finetune`, each a test that failed before its fix: an expert-parallel
size the GPUs or the experts can't split was planned as "fits"; unknown LoRA targets planned
0 trainable parameters; QLoRA's ZeRO-3 gather was counted in bf16; NaN host RAM crashed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsdeploy.estimators import finetune as ft
from dsdeploy.specs.model import load_model_spec

R1 = load_model_spec("deepseek-r1")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "finetune", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ep", "64", "--sharding", "ddp"], "ep × pp = 64 must divide the 8 GPUs"),
        (["--ep", "3", "-n", "6"], "must divide the model's 256 routed experts"),
        (["--method", "lora", "--lora-targets", "bogus"], "LoRA target module(s) bogus not in"),
        (["--host-ram-gb", "nan"], "--host-ram-gb must be a finite number > 0"),
    ],
)
def test_bad_setups_are_one_message(args, says):
    r = _run(*args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_qlora_gathers_nf4_not_bf16():
    """ZeRO-3 gathers the largest module in the weights' own dtype: NF4 (4.127 bits, QLoRA §2)
    under QLoRA, bf16 under LoRA: a ratio of 2 B / (4.127 / 8) B."""
    base = dict(method="lora", sharding="zero3", gpus_per_node=8, nodes=1, seq_len=4096, lora_rank=8)
    lora = ft.FinetuneSetup(**base)
    qlora = ft.FinetuneSetup(**{**base, "method": "qlora"})
    largest = ft.largest_module_params(R1, lora.expert_layout)
    g_lora = ft._gather_bytes(R1, lora, largest)
    g_qlora = ft._gather_bytes(R1, qlora, largest)
    assert g_lora / g_qlora == pytest.approx(2 / (ft.NF4_BITS / 8), rel=1e-6)
