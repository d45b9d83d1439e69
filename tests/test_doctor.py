"""dsdeploy doctor: probes, measurements, plan comparison, and --save into the local catalog."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.schema import Accelerator, Cpu
from dsdeploy.doctor import compare, local_entries, run_doctor, save_local_hardware
from dsdeploy.doctor.bench import disk_read_speed, memory_bandwidth
from dsdeploy.doctor.install import cuda_steps
from dsdeploy.doctor.probe import (
    llama_loading_note,
    matrix_flags,
    parse_cuda_version,
    parse_nvidia_smi_query,
    parse_system_info,
    probe_cpu,
)
from dsdeploy.engines.options import PlanOptions, resolve


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return run_doctor(d, engine="vllm", measure=True, disk_mb=32)


def test_report_has_cpu_ram_disk(report):
    assert report["cpu"]["logical_cpus"] >= 1 and report["cpu"]["physical_cores"] >= 1
    assert report["cpu"]["model"]
    assert report["ram"]["total_bytes"] > 2**28
    assert report["disk"]["free_bytes"] > 0
    assert report["gpu"]["tool"] in (None, "nvidia-smi", "rocm-smi")
    assert "vllm" in report["software"]["packages"]
    json.dumps(report)  # JSON-able


def test_measurements_are_plausible(report):
    m = report["measured"]
    for k in ("copy_gbs", "read_gbs"):
        assert 0.1 < m["memory"][k] < 5000, m["memory"]
    assert 1e-4 < m["matmul_tflops"]["fp32"] < 1000
    assert m["disk"]["read_gbs"] > 0.001
    assert m["disk"]["bytes"] == 32 * 2**20


def test_save_writes_a_catalog_the_planner_uses(report, tmp_path):
    path = save_local_hardware(report, home=tmp_path)
    assert path == tmp_path / "local-hardware.toml"
    cat = load_catalog(str(tmp_path))
    cpu = cat.cpu("local")
    assert cpu.bandwidth_gbs.source.startswith("measured: dsdeploy doctor ")
    assert cpu.bandwidth_gbs.value == pytest.approx(
        max(report["measured"]["memory"]["copy_gbs"], report["measured"]["memory"]["read_gbs"])
        / report["cpu"]["sockets"]
    )
    assert all(
        s.source.startswith("measured: dsdeploy doctor")
        for s in [cpu.cores, cpu.memory_channels, cpu.tdp_w, *cpu.tflops.values()]
    )
    dep, mem, _ = resolve(
        PlanOptions(model="r1-distill-qwen-1.5b", weights="bf16", cpu="local", placement="cpu", dram_gb=24),
        home=str(tmp_path),
    )
    assert dep.cpu.id == "local" and mem.fits


def test_local_cpu_host_memory_is_the_measured_ram_not_512_gb(report, tmp_path):
    """Issue 13: `--cpu local` without --dram-gb used to assume 512 GB per socket; the RAM that doctor
    measured (MemTotal, saved as the local CPU's max_dram_gb per socket) is the host memory."""
    save_local_hardware(report, home=tmp_path)
    dep, _, _ = resolve(
        PlanOptions(model="r1-distill-qwen-1.5b", weights="bf16", cpu="local", placement="cpu"), home=str(tmp_path)
    )
    assert dep.dram_gb == pytest.approx(report["ram"]["total_bytes"] / 1e9)
    assert dep.dram_gb != 512
    assert any("measured: dsdeploy doctor" in n for n in dep.notes)


def test_plan_cli_uses_local_cpu(report, tmp_path):
    save_local_hardware(report, home=tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsdeploy.cli.main",
            "plan",
            "--model",
            "r1-distill-qwen-1.5b",
            "--weights",
            "bf16",
            "--accelerator",
            "none",
            "--cpu",
            "local",
            "--placement",
            "cpu",
            "--dram-gb",
            "24",
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DSDEPLOY_HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    assert '"local"' in r.stdout


def test_compare_lists_whats_missing(report):
    dep, mem, _ = resolve(PlanOptions(weights="fp8", accelerator="h200-sxm", count=8, engine="vllm"))
    checks = {c["check"]: c for c in compare(report, dep, mem)}
    if not report["gpu"]["gpus"]:
        assert checks["GPUs"]["status"] == "missing"
    assert checks["disk space"]["status"] in ("ok", "missing")
    assert "python package vllm" in checks


def test_nvidia_smi_parsing_and_local_accelerator(report):
    q = "0, NVIDIA GeForce RTX 4090, 24564, 575.57.08, 450.00\n1, NVIDIA GeForce RTX 4090, 24564, 575.57.08, 450.00\n"
    gpus = parse_nvidia_smi_query(q)
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090"] * 2 and gpus[0].memory_mib == 24564
    assert parse_cuda_version("| NVIDIA-SMI 575.57.08   Driver Version: 575.57.08   CUDA Version: 12.9 |") == "12.9"
    fake = json.loads(json.dumps(report))
    fake["gpu"] = {
        "tool": "nvidia-smi",
        "driver": "575.57.08",
        "cuda": "12.9",
        "topology": None,
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA GeForce RTX 4090",
                "memory_mib": 24564,
                "vendor": "nvidia",
                "driver": "575.57.08",
                "power_limit_w": 450.0,
            }
        ],
    }
    entries = local_entries(fake)
    acc = Accelerator.model_validate(entries["accelerator"][0])
    assert acc.id == "local" and acc.arch == "ada" and acc.memory_gb.value == pytest.approx(25.76, rel=0.01)
    Cpu.model_validate(entries["cpu"][0])


def test_local_accelerator_keeps_the_catalog_parts_measured_bandwidth(report):
    """A detected MI300X streams as the catalog's MI300X does (BabelStream triad 4.09 of 5.3 TB/s,
    hbm_gbs): doctor copied the spec and dropped the measurement, predicting it 13 % faster."""
    from dsdeploy.estimators.performance import hbm_gbs

    fake = json.loads(json.dumps(report))
    gpu = {"index": 0, "name": "AMD Instinct MI300X", "memory_mib": 196592, "vendor": "amd", "driver": "6.8"}
    fake["gpu"] = {"tool": "rocm-smi", "driver": "6.8", "cuda": None, "topology": None, "gpus": [gpu]}
    acc = Accelerator.model_validate(local_entries(fake)["accelerator"][0])
    assert acc.bandwidth_measured_gbs is not None and acc.bandwidth_measured_gbs.value == 4090
    assert hbm_gbs(acc) == pytest.approx(4090 / 0.875)


def test_cpuinfo_parsing():
    text = "\n".join(
        f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon Gold 6454S\nphysical id\t: {i // 4}\n"
        f"core id\t\t: {(i % 4) // 2}\nflags\t\t: avx2 avx512f amx_tile amx_bf16\n"
        for i in range(8)
    )
    c = probe_cpu(text)
    assert c.vendor == "intel" and c.sockets == 2 and c.physical_cores == 4 and c.matrix_isa == "amx"


def test_cuda_steps_use_the_keyring_not_apt_key():
    steps = "\n".join(cuda_steps({"id": "ubuntu", "version_id": "22.04", "pretty": "Ubuntu 22.04"}))
    assert "repos/ubuntu2204/x86_64/cuda-keyring_1.1-1_all.deb" in steps and "dpkg -i cuda-keyring" in steps
    assert "apt-key" not in steps


def test_small_benches_are_fast():
    assert memory_bandwidth(total_mb=32, runs=2)["read_gbs"] > 0


def test_disk_read_speed_on_missing_path(tmp_path):
    r = disk_read_speed(tmp_path / "not" / "there.gguf", size_mb=16)
    assert r["path"] == str(tmp_path) and r["read_gbs"] > 0


def test_cli_doctor_json(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsdeploy.cli.main",
            "doctor",
            "--no-measure",
            "--json",
            "--model-path",
            str(tmp_path),
            "--weights",
            "gguf-q4_k_m",
            "--accelerator",
            "rtx-4090",
            "--count",
            "1",
            "--placement",
            "experts-on-cpu",
            "--engine",
            "llama.cpp",
            "--cpu",
            "epyc-9654",
            "--dram-gb",
            "512",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DSDEPLOY_HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    names = {c["check"] for c in rep["checks"]}
    assert {"host RAM", "disk space", "binary llama-server"} <= names
    assert "measured" not in rep


def test_cli_save_needs_measure(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "doctor", "--no-measure", "--save"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DSDEPLOY_HOME": str(tmp_path)},
    )
    assert r.returncode == 2 and "--save" in r.stderr


def test_nvlink_is_read_from_the_matrix_not_the_legend():
    from dsdeploy.doctor import nvlink_in_topology

    legend = "\nLegend:\n\n  X    = Self\n  SYS  = Connection traversing PCIe\n  NV#  = Connection traversing a bonded set of # NVLinks\n"
    pcie = "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tSYS\t0-31\nGPU1\tSYS\t X \t0-31\n" + legend
    nvl = "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tNV18\t0-31\nGPU1\tNV18\t X \t0-31\n" + legend
    assert not nvlink_in_topology(pcie)
    assert nvlink_in_topology(nvl)


def test_doctor_reads_the_plan_that_plan_json_writes(tmp_path):
    """`dsdeploy plan --json` keeps hardware, parallelism and workload in nested sections; doctor
    --plan used to read top-level keys only, dropping the accelerator and the workload."""
    import json
    import subprocess
    import sys

    from dsdeploy.engines.options import from_plan_json
    from dsdeploy.errors import UserError

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dsdeploy.cli.main",
            "plan",
            "-a",
            "h200-sxm",
            "-w",
            "fp8",
            "--input-len",
            "4096",
            "--concurrency",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    f = tmp_path / "plan.json"
    f.write_text(out.stdout)
    o = from_plan_json(f)
    assert (o.accelerator, o.count, o.weights, o.tp, o.input_len, o.concurrency) == ("h200-sxm", 8, "fp8", 8, 4096, 8)
    f.write_text(json.dumps({"count": "eight"}))
    with pytest.raises(UserError, match="'count' must be an integer"):
        from_plan_json(f)


# ---------------------------------------------------------------- AMX / AVX-512 and the llama.cpp build (issue #10)
def _proc_flags() -> set[str] | None:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k.strip() in ("flags", "Features"):
            return set(v.split())
    return set()


def test_report_lists_amx_and_avx512_flags_from_cpuinfo(report):
    isa = report["cpu"]["isa"]
    flags = _proc_flags()
    if flags is None:  # no /proc/cpuinfo: said so, not "none"
        assert isa["known"] is False and isa["source"] is None
        return
    assert isa["known"] is True and isa["source"] == "/proc/cpuinfo"
    assert isa["amx"] == sorted(f for f in flags if f.startswith("amx"))
    assert isa["avx512"] == sorted(f for f in flags if f.startswith("avx512"))


def test_amx_cpu_flags_parse():
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: avx2 avx512f avx512_bf16 amx_tile amx_int8 amx_bf16\n"
    isa = matrix_flags(probe_cpu(text).flags, "/proc/cpuinfo")
    assert isa == {
        "known": True,
        "source": "/proc/cpuinfo",
        "amx": ["amx_bf16", "amx_int8", "amx_tile"],
        "avx512": ["avx512_bf16", "avx512f"],
    }
    assert matrix_flags([], None)["known"] is False


def test_report_says_what_the_llama_cpp_build_uses(report):
    from importlib import metadata

    from dsdeploy.cli.cmd_doctor import render_text

    lc = report["llama_cpp"]
    text = render_text(report)
    assert "AMX:" in text or "AMX / AVX-512: unknown" in text
    try:
        version = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        assert lc["installed"] is False and "llama-cpp-python not installed" in text
        return
    assert lc["installed"] and lc["error"] is None and lc["version"] == version
    # the build names the CPU features it was compiled with, e.g. "CPU : SSE3 = 1 | ... | REPACK = 1 |"
    assert lc["system_info"].startswith("CPU :") and lc["features"]
    assert all(v == "1" for v in lc["features"].values())
    assert f"llama.cpp build (llama-cpp-python {version}):" in text


def test_system_info_parsing_and_loading_note():
    info = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
    f = parse_system_info(info)
    assert f == {"SSE3": "1", "AVX2": "1", "AVX512": "1", "AMX_INT8": "1", "REPACK": "1"}
    assert "--extra-bufts auto" in llama_loading_note(["amx_int8", "amx_tile"], f)
    assert "compiled without it" in llama_loading_note(["amx_tile"], {"AVX2": "1"})
    assert llama_loading_note([], f) is None


def test_llama_build_probe_survives_a_crashing_library(monkeypatch):
    """The build is asked in a child process: a native abort there is reported, doctor goes on."""
    import importlib.util

    from dsdeploy.doctor import probe

    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    monkeypatch.setattr(probe, "_LLAMA_INFO_CHILD", "import os; os.abort()")
    lc = probe.probe_llama_build()
    assert lc["installed"] is True and lc["error"].startswith("killed by SIGABRT")
