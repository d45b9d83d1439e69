"""The seed article's LoRA, ZeRO-3 and ZFS-compression claims (planner/seedcheck.finetune_claims),
pinned to hand arithmetic, and the compression constants re-measured on the tiny model's bf16
tensors (zlib; no torch needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.estimators import finetune as ft
from dsdeploy.planner import seedcheck as sc

ROOT = Path(__file__).resolve().parents[1]
PSI = 671_026_404_352  # R1 parameters from config.json (tests/test_seed_article.py)


@pytest.fixture(scope="module")
def claims():
    return {c.id: c for c in sc.finetune_claims(load_catalog())}


def test_lora_10b_claim_corrected(claims):
    c = claims["lora-10b"]
    assert c.verdict == "wrong" and c.article_value == 10e9
    assert c.value == 2_495_871_488  # 0.37 % of 671B at rank 8 with experts
    assert "0.009 %" in c.ours and "0.37 %" in c.ours


def test_lora_memory_98pct_claim(claims):
    c = claims["lora-memory-98pct"]
    # full: 16 B/param; LoRA: 2 B/param frozen bf16 + 16 B per adapter parameter (2,495,871,488)
    want = 1 - (2 * PSI + 16 * 2_495_871_488) / (16 * PSI)
    assert c.value == pytest.approx(want, rel=1e-9)
    assert c.value == pytest.approx(0.871, abs=0.001) and c.verdict == "wrong"
    assert "1.34 TB" in c.ours


def test_zero3_8x_claim(claims):
    c = claims["zero3-8x"]
    assert c.value == 8 and c.verdict == "misleading"
    assert "1.34 TB per GPU" in c.ours  # 16 · 671.03B / 8


def test_zfs_40pct_claim_and_measured_bf16_ratio(claims):
    c = claims["zfs-40pct"]
    assert c.verdict == "wrong" and c.value < 0.2
    sys.path.insert(0, str(ROOT / "bench"))
    import zlib

    from finetune_compression import TINY, ratio, safetensors_raw

    raw = safetensors_raw(TINY / "model.safetensors")
    bf16 = b"".join(b for dt, b in raw.values() if dt == "BF16")
    assert ratio(bf16, lambda b: zlib.compress(b, 6)) == pytest.approx(
        ft.COMPRESSION_MEASURED["bf16-weights"]["zlib-6"], abs=0.001
    )
