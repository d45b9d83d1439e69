"""Engine adapters: golden launch files for each adapter × emit format, refusals, local launches.

Regenerate the golden files after an intended change with

    DSDEPLOY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_engines.py -q

and review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsdeploy.engines import DeployOptions, build_launch_plan, render
from dsdeploy.engines.emit import EMITS, k8s_head_addr
from dsdeploy.engines.options import PlanOptions, resolve
from dsdeploy.errors import UserError

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DSDEPLOY_UPDATE_GOLDEN") == "1"

R1_GGUF = "/models/DeepSeek-R1-Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00009.gguf"
BIG_HOST = dict(cpu="epyc-9654", dram="ddr5-4800x12", dram_gb=512)

CASES = {
    "vllm-r1-8xh200": (
        PlanOptions(
            weights="fp8",
            accelerator="h200-sxm",
            count=8,
            engine="vllm",
            kv_dtype="fp8",
            concurrency=16,
            input_len=4096,
            output_len=2048,
        ),
        dict(model_path="/models/DeepSeek-R1"),
    ),
    "vllm-r1-2x8xh100-ray": (
        PlanOptions(weights="fp8", accelerator="h100-sxm", count=8, nodes=2, engine="vllm"),
        dict(model_path="/models/DeepSeek-R1", head_addr="10.0.0.1"),
    ),
    "sglang-r1-8xh200-dpattn": (
        PlanOptions(
            weights="fp8",
            accelerator="h200-sxm",
            count=8,
            engine="sglang",
            tp=1,
            dp_attention=8,
            ep=8,
            kv_dtype="fp8",
            concurrency=64,
            input_len=2048,
            output_len=1024,
        ),
        dict(model_path="/models/DeepSeek-R1"),
    ),
    "sglang-r1-2x8xh100": (
        PlanOptions(weights="fp8", accelerator="h100-sxm", count=8, nodes=2, engine="sglang", tp=16, pp=1),
        dict(model_path="/models/DeepSeek-R1", head_addr="10.0.0.1"),
    ),
    "llamacpp-r1-q4km-4090-exps": (
        PlanOptions(
            weights="gguf-q4_k_m",
            accelerator="rtx-4090",
            count=1,
            engine="llama.cpp",
            placement="experts-on-cpu",
            **BIG_HOST,
        ),
        dict(model_path=R1_GGUF),
    ),
    "llamacpp-70b-q4km-4090-layersplit": (
        PlanOptions(
            model="r1-distill-llama-70b",
            weights="gguf-q4_k_m",
            accelerator="rtx-4090",
            count=1,
            engine="llama.cpp",
            placement="layer-split",
            cpu="epyc-9654",
            dram_gb=128,
            kv_dtype="q4_0",
        ),
        dict(model_path="/models/DeepSeek-R1-Distill-Llama-70B-Q4_K_M.gguf"),
    ),
    "ktransformers-r1-q4km-4090": (
        PlanOptions(
            weights="gguf-q4_k_m",
            accelerator="rtx-4090",
            count=1,
            engine="ktransformers",
            placement="experts-on-cpu",
            **BIG_HOST,
        ),
        dict(model_path="/models/DeepSeek-R1", cpu_weights_path="/models/DeepSeek-R1-Q4_K_M"),
    ),
}


def _render(case: str, fmt: str) -> str:
    po, do = CASES[case]
    dep, mem, wl = resolve(po)
    kw = dict(do)
    kw["host"] = "0.0.0.0" if fmt in ("compose", "k8s") else "127.0.0.1"
    if fmt == "k8s" and dep.nodes > 1:
        kw["head_addr"] = k8s_head_addr(dep.engine.id)
    return render(dep, mem, wl, DeployOptions(**kw), fmt)


EXT = {"command": "sh", "compose": "compose.yaml", "systemd": "service", "k8s": "k8s.yaml"}


@pytest.mark.parametrize("fmt", EMITS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, fmt):
    text = _render(case, fmt)
    path = GOLDEN / f"{case}.{EXT[fmt]}"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with DSDEPLOY_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs; rerun with DSDEPLOY_UPDATE_GOLDEN=1 and review the diff"


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_parse(case):
    """Shell scripts pass `bash -n`; YAML parses; systemd units have one ExecStart per node."""
    script = _render(case, "command")
    if shutil.which("bash"):
        r = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert r.returncode == 0, r.stderr
    yaml = pytest.importorskip("yaml")
    for fmt in ("compose", "k8s"):
        docs = [d for d in yaml.safe_load_all(_render(case, fmt)) if d]
        assert docs
    unit = _render(case, "systemd")
    po, _ = CASES[case]
    assert unit.count("ExecStart=") == po.nodes
    assert unit.count("[Service]") == po.nodes


# ------------------------------------------------------------------------------ flag mapping
def _plan(case):
    po, do = CASES[case]
    dep, mem, wl = resolve(po)
    return build_launch_plan(dep, mem, wl, DeployOptions(**do))


def test_sglang_dp_attention_mapping():
    """SCHEMA.md: engine-neutral tp 1, dp_attention 8 is SGLang `--tp 8 --dp 8 --enable-dp-attention`."""
    argv = _plan("sglang-r1-8xh200-dpattn").launches[0].argv
    s = " ".join(argv)
    assert "--tp 8 --dp 8 --enable-dp-attention --ep-size 8" in s
    assert "--kv-cache-dtype fp8_e4m3" in s  # SGLang has no plain "fp8" choice
    assert "--mem-fraction-static 0.81" in s


def test_vllm_flags():
    argv = _plan("vllm-r1-8xh200").launches[0].argv
    assert argv[:3] == ["vllm", "serve", "/models/DeepSeek-R1"]
    s = " ".join(argv)
    assert "--tensor-parallel-size 8" in s and "--kv-cache-dtype fp8" in s
    # 4,096 in + R1's 32,768-token reasoning budget (its README), under 163,840 and the KV capacity
    assert "--max-model-len 36864" in s and "--gpu-memory-utilization 0.9" in s
    assert "--served-model-name deepseek-r1" in s


def test_vllm_ray_multinode():
    plan = _plan("vllm-r1-2x8xh100-ray")
    head = plan.for_node(0)
    assert head[0].argv[:3] == ["ray", "start", "--head"] and head[0].setup
    assert head[1].role == "ray-wait" and head[1].setup and "n, end = 2," in head[1].argv[2]
    assert "--distributed-executor-backend" in head[2].argv and head[2].env["VLLM_HOST_IP"] == "10.0.0.1"
    assert plan.for_node(1)[0].argv == ["ray", "start", "--block", "--address=10.0.0.1:6379"]


def test_vllm_ray_head_ipv6_is_an_ip_and_a_dns_name_is_not():
    """Ray's --node-ip-address and VLLM_HOST_IP take an IP: an IPv6 head with hex digits is one (the
    adapter's own digits-and-colons check called fe80::1 a DNS name), a host name is not."""
    po, do = CASES["vllm-r1-2x8xh100-ray"]
    dep, mem, wl = resolve(po)
    for head, is_ip in (("fe80::1", True), ("10.0.0.1", True), ("node0.cluster.local", False)):
        plan = build_launch_plan(dep, mem, wl, DeployOptions(**{**do, "head_addr": head}))
        assert ("VLLM_HOST_IP" in plan.for_node(0)[0].env) == is_ip, head
        assert (f"--node-ip-address={head}" in plan.for_node(0)[0].argv) == is_ip, head


def test_sglang_multinode():
    plan = _plan("sglang-r1-2x8xh100")
    for r in (0, 1):
        s = " ".join(plan.for_node(r)[0].argv)
        assert f"--dist-init-addr 10.0.0.1:20000 --nnodes 2 --node-rank {r}" in s
        assert "--tp 16" in s


def test_llamacpp_experts_on_cpu():
    s = " ".join(_plan("llamacpp-r1-q4km-4090-exps").launches[0].argv)
    assert "-ngl 99 -ot exps=CPU" in s
    assert "-t 96" in s  # EPYC 9654 physical cores


def test_llamacpp_layer_split_uses_plan_layers():
    po, do = CASES["llamacpp-70b-q4km-4090-layersplit"]
    dep, mem, wl = resolve(po)
    argv = build_launch_plan(dep, mem, wl, DeployOptions(**do)).launches[0].argv
    assert argv[argv.index("-ngl") + 1] == str(mem.gpu_layers)
    assert 0 < mem.gpu_layers < dep.model.layers
    s = " ".join(argv)
    assert "-ctk q4_0 -ctv q4_0 -fa on" in s


def test_ktransformers_flags():
    s = " ".join(_plan("ktransformers-r1-q4km-4090").launches[0].argv)
    assert "--kt-method LLAMAFILE --kt-weight-path /models/DeepSeek-R1-Q4_K_M --kt-cpuinfer 96" in s
    assert "--kt-threadpool-count 1" in s


# ------------------------------------------------------------------------------ refusals
REFUSALS = [
    (PlanOptions(weights="nvfp4", accelerator="h200-sxm", count=8, engine="sglang"), {}, "Blackwell"),
    (PlanOptions(weights="nvfp4", accelerator="h200-sxm", count=8, engine="vllm"), {}, "Blackwell"),
    (PlanOptions(weights="fp8", accelerator="h200-sxm", count=8, engine="vllm", ep=4), {}, "TP × DP"),
    (
        PlanOptions(
            weights="gguf-q4_k_m",
            accelerator="rtx-4090",
            count=1,
            engine="llama.cpp",
            placement="experts-on-cpu",
            kv_dtype="fp8",
            **BIG_HOST,
        ),
        {},
        "no 'fp8' KV cache",
    ),
    (
        PlanOptions(
            weights="amx-int4",
            accelerator="rtx-4090",
            count=1,
            engine="ktransformers",
            placement="experts-on-cpu",
            **BIG_HOST,
        ),
        {"cpu_weights_path": "/x"},
        "AMX",
    ),
    (
        PlanOptions(
            weights="gguf-q4_k_m",
            accelerator="rtx-4090",
            count=1,
            engine="ktransformers",
            placement="experts-on-cpu",
            **BIG_HOST,
        ),
        {},
        "--cpu-weights",
    ),
    (PlanOptions(weights="bf16", accelerator="h100-sxm", count=8, engine="vllm"), {}, "will not run"),
    (PlanOptions(weights="fp8", accelerator="h200-sxm", count=8, engine="sglang", kv_dtype="q4_0"), {}, "q4_0"),
    (
        PlanOptions(
            model="r1-distill-llama-70b",
            weights="gguf-q4_k_m",
            accelerator="rtx-4090",
            count=2,
            nodes=2,
            engine="llama.cpp",
        ),
        {},
        "nodes",
    ),
]


@pytest.mark.parametrize("po,extra,needle", REFUSALS)
def test_refusals(po, extra, needle):
    with pytest.raises(UserError) as ei:
        dep, mem, wl = resolve(po)
        build_launch_plan(dep, mem, wl, DeployOptions(model_path="/m", **extra))
    assert needle in str(ei.value)


def test_resolve_refuses_tp_not_dividing_heads():
    with pytest.raises(UserError, match="heads"):
        resolve(PlanOptions(model="r1-distill-qwen-7b", weights="bf16", accelerator="rtx-4090", count=6, tp=6))


def test_fp8_on_ampere_is_a_note_for_vllm():
    dep, mem, wl = resolve(PlanOptions(weights="fp8", accelerator="a100-sxm-80g", count=8, nodes=2, engine="vllm"))
    plan = build_launch_plan(dep, mem, wl, DeployOptions(model_path="/m"))
    assert any("Marlin" in n for n in plan.notes)


# ------------------------------------------------------------------------------ local launches
def test_vllm_local_launch_encodes_cpu_recipe(tmp_path):
    from dsdeploy.engines.vllm import REPO, local_launch

    l = local_launch(tmp_path / "tiny", "127.0.0.1", 8123, "tiny", 1024)
    venv = REPO / ".venv-vllm"
    assert l.argv == [
        str(venv / "bin" / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tmp_path / "tiny"),
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "tiny",
        "--max-model-len",
        "1024",
        "--dtype",
        "bfloat16",
    ]
    assert l.env == {"LD_PRELOAD": str(venv / "lib" / "libiomp5.so"), "VLLM_CPU_KVCACHE_SPACE": "1"}
    other = local_launch("m", "h", 1, "n", 2, venv=tmp_path / "v")
    assert other.argv[0] == str(tmp_path / "v" / "bin" / "python")
    assert other.env["LD_PRELOAD"] == str(tmp_path / "v" / "lib" / "libiomp5.so")


def test_sglang_local_launch():
    from dsdeploy.engines.sglang import local_launch

    l = local_launch("/m/tiny", "127.0.0.1", 30000, "tiny", 2048)
    assert l.argv[:3] == ["python3", "-m", "sglang.launch_server"]
    s = " ".join(l.argv)
    assert "--model-path /m/tiny" in s and "--served-model-name tiny" in s and "--context-length 2048" in s
    assert l.env == {}


# ------------------------------------------------------------------------------ CLI
def test_cli_deploy_writes_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DSDEPLOY_HOME", str(tmp_path))
    out = tmp_path / "launch.sh"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsdeploy.cli.main",
            "deploy",
            "--weights",
            "fp8",
            "--accelerator",
            "h200-sxm",
            "--count",
            "8",
            "--engine",
            "sglang",
            "--model-path",
            "/models/R1",
            "--emit",
            "command",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("#!/usr/bin/env bash")
    assert os.access(out, os.X_OK)


def test_cli_deploy_refusal_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("DSDEPLOY_HOME", str(tmp_path))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsdeploy.cli.main",
            "deploy",
            "--weights",
            "nvfp4",
            "--accelerator",
            "h200-sxm",
            "--count",
            "8",
            "--engine",
            "vllm",
            "--model-path",
            "/m",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "Blackwell" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--head-addr", "10.0.0.1; rm -rf /"),
        ("--head-addr", "$(reboot)"),
        ("--head-addr", "node 0"),
        ("--host", "0.0.0.0 --trust"),
        ("--head-addr", "-bad.example"),
    ],
)
def test_cli_deploy_refuses_an_address_that_is_not_one(tmp_path, monkeypatch, flag, value):
    """--head-addr and --host are written into shell scripts and manifests: anything but an IP
    address or a host name is refused with one message (it used to be pasted in as given)."""
    monkeypatch.setenv("DSDEPLOY_HOME", str(tmp_path))
    base = [sys.executable, "-m", "dsdeploy.cli.main", "deploy", "--weights", "fp8", "--accelerator", "h200-sxm"]
    r = subprocess.run(
        [*base, "--count", "8", "--nodes", "2", "--engine", "sglang", "--model-path", "/m", flag, value],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stdout
    assert r.stderr.startswith("error: ") and flag in r.stderr and "Traceback" not in r.stderr


def test_check_address_accepts_ips_and_host_names():
    from dsdeploy.engines.base import check_address

    for ok in ("10.0.0.1", "fe80::1", "node0", "dsdeploy-sglang-0.dsdeploy-sglang-headless", "gpu-01.example.com."):
        assert check_address(ok, "--head-addr") == ok
    for bad in ("", "a b", "1.2.3.4;x", "x" * 64, "10.0.0.999"):
        with pytest.raises(UserError):
            check_address(bad, "--head-addr")
