"""The plan's list of UNCONFIRMED inputs is what its estimators read (catalog.schema.record_reads),
not a hand-kept list.

engines.toml: vLLM's comm_buffers_gib, graph_overhead_gib, context_overhead_gib and
max_batched_tokens are all UNCONFIRMED estimates. The memory plan (estimators/memory.py) charges
context + comm buffers (more than one device) inside vLLM's fraction-of-total budget, sizes the
activations from max_batched_tokens, and never reads graph_overhead_gib for that policy (CUDA graphs
live outside the budget); llama.cpp's explicit policy does read it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.schema import record_reads
from dsdeploy.cli.main import main


def plan_json(monkeypatch, capsys, *args: str) -> dict:
    monkeypatch.setattr(sys, "argv", ["dsdeploy", "plan", *args, "--json"])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def names(res: dict) -> set[str]:
    return {u.split(" = ")[0] for u in res["unconfirmed"]}


def test_default_plan_lists_what_it_reads(monkeypatch, capsys):
    res = plan_json(monkeypatch, capsys)
    assert (res["engine"], res["hardware"]["devices"], res["fits"]) == ("vllm", 8, False)
    got = names(res)
    assert {"vllm comm_buffers_gib", "vllm max_batched_tokens", "vllm context_overhead_gib"} <= got
    assert "vllm graph_overhead_gib" not in got
    # h100-sxm memory, fp16 bits per weight and vLLM's 0.9 memory fraction are sourced, not estimates
    assert not any(n.startswith(("h100-sxm ", "fp16 ", "vllm memory_fraction")) for n in got)
    assert res["labels"]["fits"] == "unconfirmed"


def test_single_device_plan_has_no_comm_buffers(monkeypatch, capsys):
    res = plan_json(monkeypatch, capsys, "--model", "r1-distill-qwen-7b", "--weights", "bf16", "--count", "1")
    assert res["hardware"]["devices"] == 1
    got = names(res)
    assert "vllm max_batched_tokens" in got
    assert "vllm comm_buffers_gib" not in got and "vllm graph_overhead_gib" not in got


def test_explicit_policy_reads_graph_overhead(monkeypatch, capsys):
    res = plan_json(
        monkeypatch, capsys,
        "--weights", "gguf-q4_k_m", "--accelerator", "rtx-4090", "--count", "1", "--engine", "llama.cpp",
        "--placement", "experts-on-cpu", "--cpu", "epyc-9654", "--dram-gb", "512",
    )  # fmt: skip
    assert res["fits"] is True
    got = names(res)
    assert "llama.cpp graph_overhead_gib" in got
    # the performance model reads the CPU's throughput for the experts: its derived, unconfirmed figure counts
    assert any(n.startswith("epyc-9654 tflops[") for n in got)


def test_record_reads_sees_value_reads_only_inside_its_block():
    acc = load_catalog().accelerator("h100-sxm")
    _ = acc.tdp_w.value  # outside: not recorded anywhere
    with record_reads() as outer:
        _ = acc.memory_gb.value
        with record_reads() as inner:
            _ = acc.bandwidth_gbs.value
        _ = acc.memory_gb.source  # not a value read
        _ = acc.tdp_w.source
    assert set(inner) == {id(acc.bandwidth_gbs)}
    assert set(outer) == {id(acc.memory_gb), id(acc.bandwidth_gbs)}


def test_record_reads_is_per_context():
    """A thread or task has its own recorders: reads elsewhere never leak into this plan's list."""
    acc = load_catalog().accelerator("h100-sxm")
    with record_reads() as reads:
        t = threading.Thread(target=lambda: acc.tdp_w.value)
        t.start()
        t.join()

        async def other_task() -> None:
            with record_reads() as mine:
                _ = acc.bandwidth_gbs.value
            assert set(mine) == {id(acc.bandwidth_gbs)}

        asyncio.run(other_task())
        _ = acc.memory_gb.value
    assert id(acc.tdp_w) not in reads
    assert id(acc.memory_gb) in reads
