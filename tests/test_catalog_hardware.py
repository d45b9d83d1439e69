"""The hardware catalog (src/dsdeploy/catalog/data/hardware.toml): schema, coverage, hand-checked numbers.

The vocabulary lists below are copied from the measurement SCHEMA.md (accelerator and cpu
vocabularies); the test never reads ../shared.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from dsdeploy.catalog import schema as schema_mod
from dsdeploy.catalog.schema import HardwareCatalog, Sourced

HW_PATH = Path(schema_mod.__file__).parent / "data" / "hardware.toml"

ACCELERATOR_VOCAB = [
    "h100-sxm",
    "h100-pcie",
    "h100",
    "h200-sxm",
    "h800-sxm",
    "h800-pcie",
    "h20",
    "h20-141g",
    "a100-sxm-80g",
    "a100",
    "l20",
    "l40s",
    "l40",
    "rtx-4090",
    "rtx-4090d",
    "rtx-3090",
    "rtx-3080ti",
    "rtx-3060",
    "rtx-5090",
    "rtx-a6000",
    "b200",
    "b300",
    "gb200",
    "gb300",
    "mi300x",
    "apple-m3-ultra",
    "apple-m2-ultra",
    "apple-m4-pro",
    "gb10",
    "rk3588-npu",
]
CPU_VOCAB = [
    "xeon-6980p",
    "xeon-6",
    "xeon-gold-6454s",
    "xeon-gold-6330",
    "xeon-platinum-8570",
    "xeon-platinum-8468",
    "xeon-platinum-8470",
    "xeon-platinum-8488c",
    "epyc-9654",
    "epyc-9135",
    "epyc-7c13",
    "threadripper-pro-7965wx",
    "core-i7-14700",
    "core-ultra-265k",
    "ampereone-a192",
    "ryzen-ai-max-395",
    "raspberry-pi-5",
]
LINK_IDS = [
    "nvlink3",
    "nvlink4",
    "nvlink5",
    "nvlink-h800",
    "xgmi",
    "pcie3",
    "pcie4",
    "pcie5",
    "pcie6",
    "nvlink-c2c",
    "ib-edr",
    "ib-hdr",
    "ib-ndr",
    "ib-xdr",
    "roce-100",
    "roce-200",
    "roce-400",
    "roce-800",
]
STORAGE_IDS = ["sata-ssd", "nvme-gen3", "nvme-gen4", "nvme-gen5", "hdd"]
DRAM_IDS = ["ddr4", "ddr5", "mrdimm", "lpddr5", "lpddr5x"]
UNIFIED_SOCS = ["apple-m3-ultra", "apple-m2-ultra", "apple-m4-pro", "gb10", "rk3588-npu"]
GEFORCE = ["rtx-4090", "rtx-4090d", "rtx-3090", "rtx-3080ti", "rtx-3060", "rtx-5090"]


@pytest.fixture(scope="module")
def raw() -> dict:
    with HW_PATH.open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def cat(raw) -> HardwareCatalog:
    return HardwareCatalog.model_validate(raw)


def _by_id(items):
    return {x.id: x for x in items}


def _all_sourced(cat: HardwareCatalog):
    """Yield (where, Sourced) for every number in the catalog."""
    for section in ("accelerator", "cpu", "link", "storage", "dram"):
        for item in getattr(cat, section):
            for name, val in item:
                if isinstance(val, Sourced):
                    yield f"{section}:{item.id}.{name}", val
                elif isinstance(val, dict):
                    for k, v in val.items():
                        if isinstance(v, Sourced):
                            yield f"{section}:{item.id}.{name}.{k}", v


# --------------------------------------------------------------------------- schema / structure


def test_validates(cat):
    assert cat.accelerator and cat.cpu and cat.link and cat.storage and cat.dram


@pytest.mark.parametrize("section", ["accelerator", "cpu", "link", "storage", "dram"])
def test_ids_unique(cat, section):
    ids = [x.id for x in getattr(cat, section)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_accelerator_vocabulary_covered(cat):
    missing = set(ACCELERATOR_VOCAB) - set(_by_id(cat.accelerator))
    assert not missing, missing


def test_cpu_vocabulary_covered(cat):
    missing = set(CPU_VOCAB) - set(_by_id(cat.cpu))
    assert not missing, missing


def test_links_storage_dram_covered(cat):
    assert not set(LINK_IDS) - set(_by_id(cat.link))
    assert not set(STORAGE_IDS) - set(_by_id(cat.storage))
    assert not set(DRAM_IDS) - set(_by_id(cat.dram))


def test_aliases_do_not_collide_with_ids(cat):
    ids = set(_by_id(cat.accelerator))
    seen: set[str] = set()
    for a in cat.accelerator:
        for al in a.aliases:
            assert al not in ids, (a.id, al)
            assert al not in seen, (a.id, al)
            seen.add(al)


def test_link_references_resolve(cat):
    links = _by_id(cat.link)
    for a in cat.accelerator:
        if a.scale_up_link is not None:
            assert links[a.scale_up_link].kind == "scale-up", a.id
        if a.host_link is not None:
            assert links[a.host_link].kind == "host", a.id


def test_tflops_keys(cat):
    allowed = {"fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"}
    for a in cat.accelerator:
        assert a.tflops, a.id
        assert set(a.tflops) <= allowed, a.id
    for c in cat.cpu:
        assert c.tflops, c.id
        assert set(c.tflops) <= {"bf16", "int8", "fp32"}, c.id


# --------------------------------------------------------------------------- provenance rules


def test_every_number_positive_and_sourced(cat):
    for where, s in _all_sourced(cat):
        assert s.value > 0, where
        src = s.source
        assert src.startswith(
            (
                "http://",
                "https://",
                "facts.md §",
                "derived:",
                "estimate:",
                "data/reference/measurements/SCHEMA.md",
                "raw ",
            )
        ), (
            where,
            src,
        )


def test_estimates_are_marked_unconfirmed(cat):
    for where, s in _all_sourced(cat):
        if s.source.startswith("estimate:"):
            assert s.unconfirmed, where


def test_unconfirmed_values_say_why(cat):
    for where, s in _all_sourced(cat):
        if s.unconfirmed:
            assert s.note.strip(), where


def test_facts_citations_have_a_key(cat):
    for where, s in _all_sourced(cat):
        if s.source.startswith("facts.md"):
            assert re.search(r"§\d[a-z]?(\.\d+)?", s.source), (where, s.source)


# --------------------------------------------------------------------------- classes and links


def test_unified_socs(cat):
    acc = _by_id(cat.accelerator)
    for i in UNIFIED_SOCS:
        assert acc[i].unified_memory, i
        assert acc[i].hw_class == "unified-soc", i
    for a in cat.accelerator:
        if a.id not in UNIFIED_SOCS:
            assert not a.unified_memory, a.id
            assert a.max_unified_fraction is None, a.id


def test_hw_classes(cat):
    acc = _by_id(cat.accelerator)
    for i in GEFORCE:
        assert acc[i].hw_class == "consumer-gpu", i
        assert acc[i].scale_up_link is None, i
    assert acc["rtx-a6000"].hw_class == "workstation-gpu"
    for i in ["h100-sxm", "l20", "l40", "l40s", "b200", "gb300", "mi300x", "a100"]:
        assert acc[i].hw_class == "datacenter-gpu", i


@pytest.mark.parametrize(
    "acc_id, link",
    [
        ("h100-sxm", "nvlink4"),
        ("h200-sxm", "nvlink4"),
        ("h20", "nvlink4"),
        ("h800-sxm", "nvlink-h800"),
        ("a100-sxm-80g", "nvlink3"),
        ("b200", "nvlink5"),
        ("b300", "nvlink5"),
        ("gb200", "nvlink5"),
        ("gb300", "nvlink5"),
        ("mi300x", "xgmi"),
        ("h100-pcie", None),
        ("l40s", None),
        ("rtx-4090", None),
    ],
)
def test_scale_up_links(cat, acc_id, link):
    assert _by_id(cat.accelerator)[acc_id].scale_up_link == link


# --------------------------------------------------------------------------- hand-checked numbers


def test_h100_sxm_dense_not_sparse(cat):
    h = _by_id(cat.accelerator)["h100-sxm"]
    assert h.tflops["bf16"].value == 989  # dense; 1979 is the sparse datasheet figure
    assert h.tflops["fp16"].value == 989
    assert h.tflops["fp8"].value == 1979  # dense; 3958 sparse
    assert h.bandwidth_gbs.value == 3350
    assert h.memory_gb.value == 80
    assert h.tdp_w.value == 700


def test_no_sparse_headline_figures(cat):
    """Known sparse headline numbers must not appear as bf16 values."""
    acc = _by_id(cat.accelerator)
    sparse_bf16 = {
        "h100-sxm": 1979,
        "h100-pcie": 1513,
        "h200-sxm": 1979,
        "l40s": 733,
        "l40": 362.1,
        "a100-sxm-80g": 624,
        "b200": 4500,
        "mi300x": 2614.9,
    }
    for i, sparse in sparse_bf16.items():
        assert acc[i].tflops["bf16"].value == pytest.approx(sparse / 2, rel=0.02), (
            i
        )  # NVIDIA rounds (L40S 362.05 vs 733*)


def test_a100_has_no_fp8(cat):
    acc = _by_id(cat.accelerator)
    for i in ["a100-sxm-80g", "a100", "rtx-3090", "rtx-3080ti", "rtx-3060", "rtx-a6000"]:
        assert "fp8" not in acc[i].tflops, i
    assert acc["a100-sxm-80g"].tflops["bf16"].value == 312
    assert acc["a100-sxm-80g"].bandwidth_gbs.value == 2039


def test_fp4_only_on_blackwell(cat):
    """FP4 matrix rates exist on Blackwell and on AMD CDNA 4 (MI355X: MXFP4/MXFP6) only."""
    for a in cat.accelerator:
        if "fp4" in a.tflops:
            assert "blackwell" in a.arch or a.arch == "cdna4", a.id


def test_geforce_uses_fp32_accumulate(cat):
    r = _by_id(cat.accelerator)["rtx-4090"]
    assert r.tflops["bf16"].value == pytest.approx(165.2)
    assert r.tflops["fp16"].value == pytest.approx(165.2)  # not the 330.3 FP16-accumulate rate
    assert "accumulate" in r.tflops["fp16"].note.lower()


def test_unknown_form_factor_parts(cat):
    acc = _by_id(cat.accelerator)
    assert acc["h100"].memory_gb.value == 80
    assert acc["h100"].bandwidth_gbs.value == 2000
    assert "3350" in acc["h100"].bandwidth_gbs.note
    assert acc["a100"].memory_gb.value == 80
    assert acc["a100"].memory_gb.unconfirmed
    assert "40 or 80" in acc["a100"].memory_gb.note


def test_other_accelerator_figures(cat):
    acc = _by_id(cat.accelerator)
    assert acc["h200-sxm"].memory_gb.value == 141
    assert acc["h200-sxm"].bandwidth_gbs.value == 4800
    assert acc["h800-sxm"].bandwidth_gbs.value == 3352
    assert acc["h20"].tflops["bf16"].value == 148
    assert acc["mi300x"].memory_gb.value == 192
    assert acc["mi300x"].bandwidth_gbs.value == 5300
    assert acc["gb200"].memory_gb.value == 186
    assert acc["gb300"].memory_gb.value == 288
    assert acc["rtx-5090"].bandwidth_gbs.value == 1792
    assert acc["l20"].bandwidth_gbs.value == 864


def test_apple_m3_ultra(cat):
    m = _by_id(cat.accelerator)["apple-m3-ultra"]
    assert m.memory_gb.value == 512
    assert m.bandwidth_gbs.value == 819
    assert m.max_unified_fraction is not None
    assert m.max_unified_fraction.value == pytest.approx(448 / 512)
    assert "0.75" in m.max_unified_fraction.note
    for k in ("bf16", "fp16"):
        assert m.tflops[k].unconfirmed  # Apple publishes no TFLOPS


def test_unified_fraction_in_range(cat):
    for a in cat.accelerator:
        if a.max_unified_fraction is not None:
            assert 0 < a.max_unified_fraction.value <= 1, a.id


def test_link_figures(cat):
    links = _by_id(cat.link)
    assert links["nvlink4"].uni_gbs.value == 450
    assert links["nvlink3"].uni_gbs.value == 300
    assert links["nvlink5"].uni_gbs.value == 900
    assert links["nvlink-h800"].uni_gbs.value == 200  # 400 GB/s bidi
    assert links["xgmi"].uni_gbs.value == 448
    assert links["pcie4"].uni_gbs.value == 31
    assert links["pcie5"].uni_gbs.value == 63
    assert links["ib-hdr"].uni_gbs.value == 25  # 200 Gb/s
    assert links["ib-hdr"].latency_us.value == pytest.approx(0.6)
    assert links["ib-edr"].latency_us.value == pytest.approx(0.5)
    assert links["ib-ndr"].uni_gbs.value == 50
    assert links["roce-400"].uni_gbs.value == 50
    assert links["roce-400"].latency_us.unconfirmed


def test_storage_figures(cat):
    st = _by_id(cat.storage)
    assert st["sata-ssd"].read_gbs.value == pytest.approx(0.55)
    assert st["nvme-gen4"].read_gbs.value == pytest.approx(7.0)
    assert st["nvme-gen5"].read_gbs.value == pytest.approx(12.4)
    assert st["hdd"].read_gbs.unconfirmed
    vals = [st[i].read_gbs.value for i in ["hdd", "sata-ssd", "nvme-gen3", "nvme-gen4", "nvme-gen5"]]
    assert vals == sorted(vals)


def test_dram_defaults(cat):
    d = _by_id(cat.dram)
    expect = {"ddr4": 3200, "ddr5": 4800, "mrdimm": 8800, "lpddr5": 6400, "lpddr5x": 8533}
    for i, mts in expect.items():
        assert d[i].default_mts.value == mts, i
        assert d[i].bytes_per_transfer_per_channel.value == 8, i
        assert d[i].bytes_per_transfer_per_channel.source.startswith("derived")


# --------------------------------------------------------------------------- CPUs


def _parse_dram(s: str) -> tuple[str, float]:
    m = re.fullmatch(r"([a-z0-9]+)-(\d+)", s)
    assert m, s
    return m.group(1), float(m.group(2))


def test_cpu_bandwidth_is_channels_times_rate(cat):
    dram = _by_id(cat.dram)
    for c in cat.cpu:
        kind, mts = _parse_dram(c.default_dram)
        assert kind in dram, (c.id, kind)
        bpt = dram[kind].bytes_per_transfer_per_channel.value
        expect = c.memory_channels.value * mts * bpt / 1000
        assert c.bandwidth_gbs.value == pytest.approx(expect, rel=0.002), c.id


def test_cpu_hand_checked(cat):
    cpus = _by_id(cat.cpu)
    assert cpus["epyc-9654"].bandwidth_gbs.value == pytest.approx(460.8)
    assert cpus["epyc-9654"].cores.value == 96
    assert cpus["xeon-6980p"].bandwidth_gbs.value == pytest.approx(614.4)
    assert cpus["xeon-6980p"].cores.value == 128
    assert cpus["xeon-6"].bandwidth_gbs.value == pytest.approx(844.8)
    assert cpus["xeon-gold-6454s"].bandwidth_gbs.value == pytest.approx(307.2)
    assert cpus["xeon-gold-6454s"].cores.value == 32
    for i in ["xeon-6980p", "xeon-gold-6454s", "xeon-platinum-8488c"]:
        assert cpus[i].matrix_isa == "amx", i
    assert cpus["epyc-9654"].matrix_isa == "avx512"


def test_cpu_tflops_are_derived(cat):
    for c in cat.cpu:
        for k, s in c.tflops.items():
            assert s.source.startswith("derived:"), (c.id, k)


def test_amx_rate(cat):
    """6980P bf16 = 128 cores × 2.0 GHz × 1024 FLOP/cycle."""
    x = _by_id(cat.cpu)["xeon-6980p"]
    assert x.tflops["bf16"].value == pytest.approx(128 * 2.0 * 1024 / 1000)
    assert x.tflops["int8"].value == pytest.approx(2 * x.tflops["bf16"].value)
