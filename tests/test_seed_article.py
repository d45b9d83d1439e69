"""The seed article's quantitative claims, against numbers worked out by hand from cited facts.

Article: shared/seed/deepseek-local-deployment-article.zh.txt. Facts: data/reference/facts.md.
`dsdeploy.planner.seedcheck` computes our side from the catalog and the planner; these tests pin
its results to hand arithmetic, and check the generated docs/seed-article-check.md is current.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.planner import seedcheck as sc

CAT = load_catalog()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def claims():
    return {c.id: c for c in sc.claims(CAT)}


def test_fp16_size_of_r1_is_1_34_tb(claims):
    # 671,026,404,352 parameters (config.json; DeepSeek: 671B) × 2 bytes = 1.342 TB.
    assert sc.r1_weights_bytes(CAT, "fp16") == 671_026_404_352 * 2
    c = claims["fp16-size"]
    assert c.value == pytest.approx(1.342, abs=0.001)
    assert c.verdict == "right"  # the article's "约1.3TB" is the same number, rounded


def test_fp16_r1_does_not_fit_8x_h100(claims):
    ev = sc.evaluate_r1(CAT, "fp16", "h100-sxm", 8)
    assert not ev.memory.fits and ev.memory.binding == "weights"
    # 1,342 GB of weights against 8 × 80 GB = 640 GB: 2.1× over before any KV cache
    assert ev.memory.weights_bytes_total > 2 * 8 * 80e9
    assert claims["fp16-8xh100"].verdict == "wrong"


def test_kv_reserve_counts_the_mla_latent_on_every_tp_rank(claims):
    """Issue 13: MLA's latent (one KV head) is replicated on all 8 TP ranks, so each GPU's 20 % reserve
    (0.2 × 81,559 MiB = 0.2 × 85.52 GB = 17.10 GB, the H100's memory as nvidia-smi reports it) holds
    17,104,161,996 // 70,272 B = 243,399 tokens (61 × (512 + 64) × 2 B per token, DeepSeek-V2 §2.1.3)
    and the 8 GPUs hold the same tokens: not 8 × 17.10 GB // 70,272 = 1,947,195 (8× over)."""
    c = claims["kv-reserve-20pct"]
    assert c.value == 0.2 * 81_559 * 1024**2 // 70_272 == 243_399
    assert "118 requests" in c.ours  # 243,399 // 2,048


def test_article_4bit_size_167gb_is_wrong(claims):
    c = claims["4bit-size"]
    # 4 bits × 671.03B = 335.5 GB before any scale; Q4_K_M as published: 376.65 GiB = 404.4 GB
    # (Ollama: 404 GB). Ours for gguf-q4_k_m must sit within 2 % of the published file.
    assert 671_026_404_352 * 4 / 8 / 1e9 == pytest.approx(335.5, abs=0.1)
    published_q4_k_m = 376.65 * 1024**3
    ours = sc.r1_weights_bytes(CAT, "gguf-q4_k_m")
    assert ours == pytest.approx(published_q4_k_m, rel=0.02)
    assert 370e9 < ours < 420e9 and c.value == pytest.approx(ours / 1e9)
    assert c.article_value == 167 and c.verdict == "wrong"
    # 167 GB would be 1.99 bits per weight
    assert 167e9 * 8 / 671_026_404_352 == pytest.approx(1.99, abs=0.01)


def test_4bit_r1_does_not_fit_one_a100(claims):
    for w in ("awq-int4", "gguf-q4_k_m"):
        ev = sc.evaluate_r1(CAT, w, "a100-sxm-80g", 1)
        assert not ev.memory.fits, w
    assert claims["4bit-one-a100"].verdict == "wrong"


def test_nvlink4_vs_pcie5_ratio_is_about_7(claims):
    # facts.md §2a: NVLink 4 = 900 GB/s bidi (450 uni); PCIe 5.0 x16 = 126 GB/s bidi (63 uni)
    assert sc.link_bidi_gbs(CAT, "nvlink4") == 900
    assert sc.link_bidi_gbs(CAT, "pcie5") == 126
    c = claims["nvlink-vs-pcie"]
    assert c.value == pytest.approx(900 / 126) == pytest.approx(7.14, abs=0.01)
    assert c.verdict == "right"


def test_loading_1_3_tb_at_28_gbs_and_raid0_bounds(claims):
    # 1.342 TB / 28 GB/s ≈ 48 s
    assert sc.load_seconds(sc.r1_weights_bytes(CAT, "fp16"), 28) == pytest.approx(47.9, abs=0.1)
    # a 4-drive Gen5 RAID0 cannot exceed 4 × (12.4…14) GB/s; facts.md §2c: 12.4 GB/s per T700-class drive
    assert sc.raid0_ceiling_gbs(CAT, 4) == pytest.approx(4 * 12.4)
    assert sc.raid0_ceiling_gbs(CAT, 4) <= 4 * 14
    c = claims["raid0-28gbs"]
    # "14× SATA": 28 / 0.55 ≈ 51×, so the 14× is wrong; and the page-cache bound is cited
    assert c.value == pytest.approx(28 / 0.55) and c.verdict == "wrong"
    assert "page cache" in c.why and "ubergarm" in " ".join(c.sources)


def test_h100_1979_tflops_is_not_tf32(claims):
    # facts.md §1b: H100 SXM dense TF32 494.5, BF16 989, FP8 1,979; BF16 sparse = 1,979
    h = CAT.accelerator("h100-sxm").tflops
    assert (h["tf32"].value, h["bf16"].value, h["fp8"].value) == (494.5, 989, 1979)
    assert 2 * h["bf16"].value == 1978  # "1,979" is NVIDIA's rounding of the sparse BF16 figure
    c = claims["h100-tf32"]
    assert c.value == 494.5 and c.article_value == 1979 and c.verdict == "wrong"


def test_h100_vs_a100_is_not_2_3x(claims):
    # like-for-like dense peaks: TF32 494.5/156 = 3.17, BF16 989/312 = 3.17; HBM 3350/2039 = 1.64
    c = claims["h100-vs-a100"]
    assert c.value == pytest.approx(494.5 / 156, abs=1e-9) == pytest.approx(3.17, abs=0.01)
    assert "1.64" in c.ours and c.verdict == "wrong"


def test_infiniband_hdr_is_200_not_400(claims):
    # facts.md §2b: HDR 200 Gb/s (4 × 50); NDR 400 Gb/s (4 × 100), ConnectX-7
    assert sc.link_gbit(CAT, "ib-hdr") == 200
    assert sc.link_gbit(CAT, "ib-ndr") == 400
    c = claims["ib-hdr-400"]
    assert c.value == 200 and c.verdict == "wrong" and "ConnectX-7" in c.why


def test_power_5_6_kw_is_gpu_only(claims):
    # 8 × 700 W (H100 SXM TDP, facts.md §1a) = 5.6 kW; 49,420 kWh / 8,760 h = 5.64 kW
    assert sc.system_gpu_watts(CAT, "h100-sxm", 8) == 5600
    assert claims["power-5.6kw"].value == 5.6
    e = claims["energy-per-year"]
    assert e.value == pytest.approx(5.6 * 8760) == 49_056
    assert abs(e.value / 49_420 - 1) < 0.01 and e.verdict == "roughly right"


def test_article_arithmetic(claims):
    assert claims["bom-total"].value == 2_240_000 + 15_000 + 85_000 + 336_000 + 120_000 == 2_796_000
    assert claims["depreciation"].value == pytest.approx(932_000)


def test_weights_file_is_fp8_not_1_3_tb(claims):
    c = claims["weights-file"]
    # FP8 main model: matmul weights at 8.002 bits, embeddings/head/norms 16 bits → ≈673 GB
    assert c.value == pytest.approx(0.673, abs=0.002) and c.verdict == "misleading"


def test_every_claim_is_complete(claims):
    allowed = {"right", "roughly right", "misleading", "wrong"}
    rel = Path("shared/seed/deepseek-local-deployment-article.zh.txt")
    found = [p for p in (ROOT / rel, ROOT.parent / rel) if p.exists()]
    text = found[0].read_text(encoding="utf-8") if found else None
    for c in claims.values():
        assert c.verdict in allowed and c.quote_zh and c.ours and c.why
        if text is not None:
            # every quote is the article's own words (quotes with "…" are joined excerpts)
            for part in c.quote_zh.split(" … "):
                assert part in text, part


def test_generated_doc_is_current():
    from dsdeploy.cli.cmd_seedcheck import ARTICLE
    from dsdeploy.reports.markdown import seedcheck_markdown

    doc = ROOT / "docs" / "seed-article-check.md"
    assert doc.exists(), "run: dsdeploy seed-check --write docs/seed-article-check.md"
    assert doc.read_text(encoding="utf-8") == seedcheck_markdown(sc.claims_as_dicts(CAT), ARTICLE), (
        "docs/seed-article-check.md is stale: run `dsdeploy seed-check --write docs/seed-article-check.md`"
    )
