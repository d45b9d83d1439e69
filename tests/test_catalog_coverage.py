"""Catalog coverage added for issues 12 and 13: MI355X, A800, Ascend 910B (and the China-market parts
already present: H20, L20, H800), GB200/GB300 as one 72-GPU NVLink domain, the MXFP4 and NVFP4
hardware rules as data, and AMD's ATOM engine.

Numbers are checked against the arithmetic their sources state; the format/hardware rule is read
from formats.toml (`runs_on_arch`), never from planner code.
"""

from __future__ import annotations

import pydantic
import pytest
from scenario_rows import scenario_row

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.schema import Sourced, WeightFormat
from dsdeploy.planner.plan import format_runs_on
from dsdeploy.validate.scenarios import Row, row_deployment

NEW_ACCELERATORS = ["mi355x", "a800", "ascend-910b"]
CHINA_MARKET = ["h20", "l20", "a800", "h800-sxm", "ascend-910b"]
BLACKWELL_ARCHS = {"blackwell", "blackwell-ultra", "grace-blackwell", "grace-blackwell-ultra"}
PREFIXES = ("http://", "https://", "facts.md §", "derived:", "estimate:", "SCHEMA.md", "ROCm/ATOM ")


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def _sourced_fields(obj) -> list[tuple[str, Sourced]]:
    out = []
    for name, val in obj:
        if isinstance(val, Sourced):
            out.append((name, val))
        elif isinstance(val, dict):
            out += [(f"{name}.{k}", v) for k, v in val.items() if isinstance(v, Sourced)]
    return out


# --------------------------------------------------------------------------- accelerators


@pytest.mark.parametrize("acc_id", sorted(set(NEW_ACCELERATORS + CHINA_MARKET + ["gb200", "gb300"])))
def test_accelerator_loads_with_sources(cat, acc_id):
    a = cat.accelerator(acc_id)
    fields = _sourced_fields(a)
    assert {"memory_gb", "bandwidth_gbs", "tdp_w"} <= {n for n, _ in fields}
    assert a.tflops, acc_id
    for name, s in fields:
        assert s.value > 0, (acc_id, name)
        assert s.source.startswith(PREFIXES), (acc_id, name, s.source)
        if s.unconfirmed:
            assert s.note.strip(), (acc_id, name)  # an unconfirmed number says why


def test_new_accelerator_links_resolve(cat):
    for acc_id in NEW_ACCELERATORS:
        a = cat.accelerator(acc_id)
        assert cat.link(a.scale_up_link).kind == "scale-up", acc_id
        assert cat.link(a.host_link).kind == "host", acc_id


def test_mi355x_figures(cat):
    m = cat.accelerator("mi355x")
    assert (m.vendor, m.arch) == ("amd", "cdna4")
    assert m.memory_gb.value == 288  # HBM3E, Tom's Hardware / ISC 2025
    assert m.bandwidth_gbs.value == 8000  # 8 TB/s
    assert m.tdp_w.value == 1400
    # ISSCC: 8 XCDs x 32 CUs x 8,192 FP8 FLOP/clock; "five petaflops" FP8 (dense).
    assert m.tflops["fp8"].value == 5000
    # CDNA: 16-bit matrix rate = FP8 / 2 (derived, marked unconfirmed); FP4 = 10 PFLOPS dense
    # (The Register: "10 petaFLOPS ... FP4 (double that ... sparsity)") = 2 x FP8.
    assert m.tflops["bf16"].value == pytest.approx(m.tflops["fp8"].value / 2)
    assert m.tflops["bf16"].unconfirmed
    assert m.tflops["fp4"].value == pytest.approx(m.tflops["fp8"].value * 2) == 10_000
    # more memory and bandwidth than the MI300X it succeeds
    mi300 = cat.accelerator("mi300x")
    assert m.memory_gb.value / mi300.memory_gb.value == pytest.approx(1.5)


def test_a800_is_an_a100_with_cut_nvlink(cat):
    a800, a100 = cat.accelerator("a800"), cat.accelerator("a100-sxm-80g")
    for k in ("bf16", "fp16", "int8"):
        assert a800.tflops[k].value == a100.tflops[k].value, k
    assert "fp8" not in a800.tflops  # Ampere: no FP8 tensor cores
    assert a800.bandwidth_gbs.value == a100.bandwidth_gbs.value == 2039
    assert cat.link("nvlink-a800").uni_gbs.value == 400 / 2  # 400 GB/s bidi
    assert cat.link("nvlink-a800").uni_gbs.value < cat.link(a100.scale_up_link).uni_gbs.value


def test_ascend_910b(cat):
    a = cat.accelerator("ascend-910b")
    assert a.vendor == "huawei"
    assert a.memory_gb.value == 64 and a.memory_gb.unconfirmed  # sources conflict: 32 vs 64 GB
    assert "fp8" not in a.tflops  # native FP8 only from Ascend 950
    assert a.tflops["int8"].value == 2 * a.tflops["fp16"].value
    assert a.bandwidth_gbs.value == 4 * 400  # 4 HBM2e stacks x ~400 GB/s (derived)
    assert cat.link("hccs").uni_gbs.value == 600 / 2


def test_china_market_parts_present(cat):
    for acc_id in CHINA_MARKET:
        assert cat.accelerator(acc_id).vendor in ("nvidia", "huawei"), acc_id


def test_nvl72_is_one_72_gpu_nvlink_domain(cat):
    for acc_id in ("gb200", "gb300"):
        a = cat.accelerator(acc_id)
        assert a.nvlink_domain is not None
        assert a.nvlink_domain.value == 72
        assert a.scale_up_domain(4) == 72  # a node is a 4-GPU compute tray; the domain spans 18
    # everything else: the scale-up domain is one node
    assert cat.accelerator("h100-sxm").nvlink_domain is None
    assert cat.accelerator("h100-sxm").scale_up_domain(8) == 8
    assert cat.accelerator("b200").scale_up_domain(8) == 8


# --------------------------------------------------------------------------- formats


def test_mxfp4_format(cat):
    f = cat.format("mxfp4")
    assert f.compute == "fp4"
    # 4-bit E2M1 values + one 8-bit E8M0 scale per 32 values
    for cls in ("dense_mlp", "shared_experts", "routed_experts"):
        assert f.bpw[cls].value == pytest.approx(4 + 8 / 32), cls
    # AMD Quark excludes self_attn, the router gate and lm_head: they stay BF16
    for cls in ("attention", "lm_head", "embedding", "other"):
        assert f.bpw[cls].value == 16, cls
    assert "atom" in f.engines
    for _, s in _sourced_fields(f):
        assert s.source.startswith(PREFIXES), s.source


def test_nvfp4_scale_block_is_16(cat):
    assert cat.format("nvfp4").bpw["routed_experts"].value == pytest.approx(4 + 8 / 16)


def test_nvfp4_on_a100_is_refused_by_the_data(cat):
    """Issue 13: 'NVFP4 on an A100 says FITS, though NVFP4 needs Blackwell'."""
    f = cat.format("nvfp4")
    for acc_id in ("a100", "a100-sxm-80g", "a800", "h100-sxm", "h200-sxm", "mi300x", "ascend-910b"):
        a = cat.accelerator(acc_id)
        assert not f.runs_on(a.arch), acc_id
        assert f.compute not in a.tflops and f.fallback is None, acc_id  # no FP4 rate, no fallback
        assert not format_runs_on(cat, "nvfp4", acc_id, "gpu"), acc_id
    # MI355X has FP4 matrix cores, but for MXFP4 (E8M0 scales), not NVIDIA's NVFP4: only the
    # format's runs_on_arch can say no there.
    assert "fp4" in cat.accelerator("mi355x").tflops
    assert not f.runs_on(cat.accelerator("mi355x").arch)
    for acc_id in ("b200", "b300", "gb200", "gb300", "rtx-5090"):
        assert f.runs_on(cat.accelerator(acc_id).arch), acc_id


def test_mxfp4_runs_on_mi355x_and_blackwell_only(cat):
    f = cat.format("mxfp4")
    for acc_id in ("mi355x", "b200", "b300", "gb200", "gb300"):
        a = cat.accelerator(acc_id)
        assert f.runs_on(a.arch) and f.compute in a.tflops, acc_id
    for acc_id in ("mi300x", "mi325x", "h100-sxm", "h200-sxm", "a100", "ascend-910b"):
        assert not f.runs_on(cat.accelerator(acc_id).arch), acc_id


def test_runs_on_arch_names_real_archs(cat):
    archs = {a.arch for a in cat.accelerators.values()}
    for f in cat.formats.values():
        if f.runs_on_arch is not None:
            assert set(f.runs_on_arch) <= archs, (f.id, set(f.runs_on_arch) - archs)
            assert f.runs_on_source.strip(), f.id
    assert set(cat.format("nvfp4").runs_on_arch) == BLACKWELL_ARCHS


def test_runs_on_arch_needs_a_source(cat):
    raw = cat.format("nvfp4").model_dump()
    raw["runs_on_source"] = ""
    with pytest.raises(pydantic.ValidationError, match="runs_on_source"):
        WeightFormat.model_validate(raw)


# --------------------------------------------------------------------------- engines


def test_atom_engine(cat):
    e = cat.engine("atom")
    assert e.platforms == ["rocm"]
    assert e.policy == "fraction_of_total"
    assert e.memory_fraction is not None and e.memory_fraction.value == 0.9
    assert e.max_num_seqs.value == 512
    assert e.max_batched_tokens.value == 16384
    for name, s in _sourced_fields(e):
        assert s.source.startswith(PREFIXES), (name, s.source)
        if s.source.startswith("estimate:"):
            assert s.unconfirmed, name
    assert "atom" in cat.format("fp8").engines


def test_every_format_engine_exists(cat):
    for f in cat.formats.values():
        for e in f.engines:
            cat.engine(e)  # raises on an unknown id


def _row(**kw: str) -> Row:
    """An MXFP4 row on MI355X with ATOM, 8 accelerators in one node."""
    return scenario_row(
        **{"id": "T1", "weights": "mxfp4", "kv_dtype": "", "engine": "atom", "accelerator": "mi355x"}
        | {"accelerators_per_node": "8", "nodes": "1"}
        | kw
    )


@pytest.mark.parametrize("weights", ["mxfp4", "fp8"])
def test_inferencex_mi355x_atom_rows_resolve(cat, weights):
    """The InferenceX MI355X rows (ATOM and SGLang, FP8 and MXFP4) now map to a deployment."""
    for engine in ("atom", "sglang"):
        dep, wl, _ = row_deployment(cat, _row(weights=weights, engine=engine))
        assert dep.accelerator is not None and dep.accelerator.id == "mi355x"
        assert dep.weights.id == weights and dep.engine.id == engine
