"""`dsdeploy doctor`: what this machine has, what a plan needs, what is missing and how to install it.

`run_doctor()` returns a plain dict report (JSON-able); `save_local_hardware()` writes the measured
CPU (and GPU, if any) as `local` entries of `$DSDEPLOY_HOME/local-hardware.toml` in the exact
HardwareCatalog format, which `load_catalog()` merges, so `--cpu local` plans use measured numbers.
"""

from __future__ import annotations

import datetime as _dt
import platform
import re
from pathlib import Path
from typing import Any

from dsdeploy.catalog.schema import Sourced
from dsdeploy.doctor import bench, probe
from dsdeploy.doctor.install import install_steps, requirement_notes

GIB = 1024**3


def run_doctor(
    model_path: str | Path = ".",
    engine: str | None = None,
    measure: bool = True,
    disk_mb: int = 256,
    dep=None,
    mem=None,
) -> dict:
    gpu = probe.probe_gpus()
    cpuinfo = probe.read_cpuinfo()
    cpu_source = "/proc/cpuinfo" if cpuinfo is not None else None
    cpu = probe.probe_cpu(cpuinfo or "")
    report: dict = {
        "date": _dt.date.today().isoformat(),
        "os": probe.os_release(),
        "python": platform.python_version(),
        "gpu": {
            "tool": gpu.tool,
            "driver": gpu.driver,
            "cuda": gpu.cuda,
            "topology": gpu.topology,
            "gpus": [probe.as_dict(g) for g in gpu.gpus],
        },
        "cpu": {**probe.as_dict(cpu), "matrix_isa": cpu.matrix_isa},
        "ram": probe.probe_ram(),
        "disk": probe.probe_disk(model_path),
        "engine": engine,
        "software": probe.probe_packages(engine),
    }
    report["cpu"].pop("flags", None)
    report["cpu"]["flags_of_note"] = [
        f
        for f in cpu.flags
        if f
        in (
            "avx2",
            "avx512f",
            "avx512_bf16",
            "avx512_vnni",
            "avx_vnni",
            "amx_tile",
            "amx_bf16",
            "amx_int8",
            "fma",
            "asimd",
            "sve",
        )
    ]
    report["cpu"]["isa"] = probe.matrix_flags(cpu.flags, cpu_source)
    llama = probe.probe_llama_build()
    llama["note"] = probe.llama_loading_note(report["cpu"]["isa"]["amx"], llama["features"])
    report["llama_cpp"] = llama
    if measure:
        report["measured"] = {
            "memory": bench.memory_bandwidth(),
            "matmul_tflops": bench.matmul_tflops(),
            "disk": bench.disk_read_speed(model_path, size_mb=disk_mb),
        }
    if dep is not None and mem is not None:
        report["plan"] = {"describe": dep.describe(), "fits": mem.fits, "reason": mem.reason}
        report["checks"] = compare(report, dep, mem)
    report["install"] = install_steps(report, engine)
    report["requirements"] = requirement_notes(engine)
    return report


def _check(name: str, ok: bool | None, have: str, need: str, fix: str = "") -> dict:
    return {
        "check": name,
        "status": "ok" if ok else ("unknown" if ok is None else "missing"),
        "have": have,
        "need": need,
        "fix": fix,
    }


def nvlink_in_topology(topo: str) -> bool:
    """NVLink between GPUs in `nvidia-smi topo -m` output: an `NV<n>` cell in the matrix rows (the
    legend below the matrix always lists `NV#`, so it is not read)."""
    matrix = topo.split("Legend:")[0]
    return re.search(r"\bNV\d+\b", matrix) is not None


def _gpu_checks(report: dict, dep) -> list[dict]:
    """GPU count, memory, driver and interconnect against the plan's accelerators (GPU plans only)."""
    from dsdeploy.estimators.memory import GB

    gpus = report["gpu"]["gpus"]
    need_n = dep.per_node
    need_mem = dep.accelerator.memory_gb.value
    have = min((g["memory_mib"] * 2**20 / GB for g in gpus), default=0.0)
    out = [
        _check(
            "GPUs",
            len(gpus) >= need_n,
            f"{len(gpus)} ({', '.join(sorted({g['name'] for g in gpus})) or 'none found'})",
            f"{need_n}× {dep.accelerator.name} per node",
            "install the GPU driver (see install steps)" if not gpus else "",
        ),
        _check(
            "GPU memory",
            have >= 0.95 * need_mem if gpus else False,
            f"{have:,.1f} GB per GPU",
            f"{need_mem:g} GB per GPU ({dep.accelerator.id})",
        ),
    ]
    if gpus and report["gpu"]["tool"] == "nvidia-smi":
        out.append(_driver_check(report["gpu"]["driver"]))
    if dep.per_node > 1 and gpus:
        has_nv = nvlink_in_topology(report["gpu"]["topology"] or "")
        out.append(
            _check(
                "GPU interconnect",
                has_nv or None,
                "NVLink seen in topo -m" if has_nv else "no NVLink in topo -m",
                f"{dep.scale_up.name if dep.scale_up else 'PCIe'} between the {dep.per_node} GPUs",
            )
        )
    return out


def _driver_check(driver: str | None) -> dict:
    drv = driver or "0"
    major = int(drv.split(".")[0]) if drv.split(".")[0].isdigit() else 0
    return _check(
        "NVIDIA driver",
        major >= 575,
        drv,
        "R575+ for CUDA 12.9 wheels (vLLM/SGLang/PyTorch cu129)",
        "install a newer driver from the CUDA network repository (cuda-keyring)",
    )


def _memory_checks(report: dict, mem) -> list[dict]:
    """Host RAM for what the plan keeps on the host (if anything), and disk space for the weights."""
    from dsdeploy.estimators.memory import GB

    out = []
    host = next((d for d in mem.devices if d.kind == "host"), None)
    ram = report["ram"]["total_bytes"] or 0
    if host is not None:
        need = host.weights_bytes + host.kv_bytes + host.activation_bytes
        out.append(
            _check("host RAM", ram >= need, f"{ram / GB:,.1f} GB", f"{need / GB:,.1f} GB for host-side weights + KV")
        )
    free = report["disk"]["free_bytes"]
    out.append(
        _check(
            "disk space",
            free >= mem.weights_bytes_total,
            f"{free / GB:,.1f} GB free at {report['disk']['path']}",
            f"{mem.weights_bytes_total / GB:,.1f} GB of weights",
        )
    )
    return out


def _software_checks(sw: dict, engine_id: str) -> list[dict]:
    """One check per Python package, then one per binary, that the engine needs."""
    packages = [
        _check(
            f"python package {pkg}",
            ver is not None,
            ver or "not installed",
            f"{pkg} for {engine_id}",
            "see install steps",
        )
        for pkg, ver in sw["packages"].items()
    ]
    binaries = [
        _check(f"binary {b}", where is not None, where or "not on PATH", f"{b} for {engine_id}", "see install steps")
        for b, where in sw["binaries"].items()
    ]
    return packages + binaries


def _cpu_checks(report: dict, dep) -> list[dict]:
    """AMX for KTransformers' AMX-INT4 kernels; physical cores for plans that compute on the CPU."""
    out = []
    cpu = report["cpu"]
    if dep.engine.id == "ktransformers" and dep.weights.id == "amx-int4":
        isa = cpu["matrix_isa"]
        out.append(_check("CPU AMX", isa == "amx", isa, "AMX (Sapphire Rapids or newer Xeon) for --kt-method AMXINT4"))
    if dep.cpu is not None and dep.placement in ("cpu", "experts-on-cpu", "layer-split"):
        need = int(dep.cpu.cores.value) * dep.cpu_sockets
        out.append(
            _check(
                "CPU cores",
                cpu["physical_cores"] >= need,
                f"{cpu['physical_cores']} physical ({cpu['model']})",
                f"{need} ({dep.cpu.name})",
            )
        )
    return out


def compare(report: dict, dep, mem) -> list[dict]:
    """What the plan needs against what was found."""
    out = []
    if dep.accelerator is not None and dep.placement != "cpu":
        out += _gpu_checks(report, dep)
    out += _memory_checks(report, mem)
    out += _software_checks(report["software"], dep.engine.id)
    out += _cpu_checks(report, dep)
    return out


# ------------------------------------------------------------------------------- --save
def _sourced(value: float, source: str, unconfirmed: bool = False, note: str = "") -> dict:
    d = {"value": float(value), "source": source, "unconfirmed": unconfirmed}
    if note:
        d["note"] = note
    return d


def _from_catalog(part: str, v: Sourced, note: str = "") -> dict:
    """A catalog part's figure (a `Sourced`) copied into the local entry, naming the part it came from."""
    return _sourced(v.value, f"catalog {part}: {v.source}", v.unconfirmed, note)


def local_entries(report: dict) -> dict:
    """`[[cpu]]` (and `[[accelerator]]`) tables with id "local" from a measured report."""
    if "measured" not in report:
        raise ValueError("--save needs the measurements; run without --no-measure")
    src = f"measured: dsdeploy doctor {report['date']}"
    cpu = report["cpu"]
    m = report["measured"]
    sockets = max(1, cpu["sockets"])
    bw = max(m["memory"]["copy_gbs"], m["memory"]["read_gbs"]) / sockets
    cores = max(1, cpu["physical_cores"] // sockets)
    tflops = {
        "fp32": _sourced(
            m["matmul_tflops"]["fp32"] / sockets,
            src,
            note=f"NumPy float32 matmul n={m['matmul_tflops']['fp32_n']}, all sockets ÷ {sockets}",
        )
    }
    mt = m["matmul_tflops"]
    native_bf16 = any(f in cpu.get("flags_of_note", []) for f in ("avx512_bf16", "amx_bf16"))
    if "bf16" in mt and native_bf16:
        tflops["bf16"] = _sourced(mt["bf16"] / sockets, src, note=f"{mt['bf16_via']} bf16 matmul n={mt['bf16_n']}")
    elif "bf16" in mt:
        # No native bf16 instructions: engines widen bf16 to fp32 and run fp32 kernels; torch's own
        # bf16 fallback is far slower than that and would mislead the planner.
        tflops["bf16"] = _sourced(
            mt["fp32"] / sockets,
            src,
            note=f"no avx512_bf16/amx_bf16: bf16 runs as fp32 (the fp32 figure); torch bf16 matmul measured "
            f"{mt['bf16'] * 1e3:.2f} GFLOPS n={mt['bf16_n']}",
        )
    ram_gb = (report["ram"]["total_bytes"] or 0) / 1e9
    channels = max(1, round(bw / 38.4))
    entry = {
        "id": "local",
        "name": f"{cpu['model']} (this machine, measured)",
        "vendor": cpu["vendor"] if cpu["vendor"] in ("intel", "amd", "arm") else "other",
        "cores": _sourced(
            cores, src, note=f"physical cores per socket ({cpu['logical_cpus']} logical CPUs, {sockets} socket(s))"
        ),
        "memory_channels": _sourced(
            channels,
            src,
            unconfirmed=True,
            note="not measurable from software: measured bandwidth ÷ 38.4 GB/s (one DDR5-4800 channel)",
        ),
        "default_dram": "ddr5-4800",
        "bandwidth_gbs": _sourced(
            bw,
            src,
            note=f"best of {m['memory']['runs']} NumPy copy/sum runs over {m['memory']['array_mb']} MB, "
            f"{m['memory']['threads']} threads; per socket",
        ),
        "matrix_isa": cpu["matrix_isa"],
        "tflops": tflops,
        "tdp_w": _sourced(
            max(35, min(500, 10 * cores)), src, unconfirmed=True, note="not measured: estimate 10 W per physical core"
        ),
        "max_dram_gb": _sourced(ram_gb / sockets, src, note="installed RAM per socket (MemTotal)"),
    }
    out = {"cpu": [entry]}
    gpus = report["gpu"]["gpus"]
    if gpus:
        out["accelerator"] = [_local_accelerator(report, src)]
    return out


def _local_accelerator(report: dict, src: str) -> dict:
    from dsdeploy.catalog import load_catalog

    g = report["gpu"]["gpus"][0]
    name = g["name"]
    match = None
    try:
        cat = load_catalog()
        key = name.lower().replace("nvidia", "").replace("geforce", "").strip()
        for a in cat.accelerators.values():
            if a.id != "local" and key and (key in a.name.lower() or a.name.lower().split(" 8")[0].endswith(key)):
                match = a
                break
    except Exception:
        match = None
    mem_gb = g["memory_mib"] * 2**20 / 1e9
    entry: dict[str, Any] = {
        "id": "local",
        "name": f"{name} (this machine)",
        "vendor": "nvidia" if g.get("vendor", "nvidia") == "nvidia" else "amd",
        "arch": match.arch if match else "unknown",
        "hw_class": match.hw_class if match else "consumer-gpu",
        "unified_memory": False,
        "memory_gb": _sourced(mem_gb, src, note=f"{report['gpu']['tool']} memory.total"),
    }
    if match:
        entry["bandwidth_gbs"] = _from_catalog(match.id, match.bandwidth_gbs, "not measured by doctor")
        if match.bandwidth_measured_gbs is not None:
            entry["bandwidth_measured_gbs"] = _from_catalog(
                match.id, match.bandwidth_measured_gbs, "not measured by doctor"
            )
        entry["tflops"] = {k: _from_catalog(match.id, v) for k, v in match.tflops.items()}
        entry["scale_up_link"] = match.scale_up_link
        entry["host_link"] = match.host_link
    else:
        entry["bandwidth_gbs"] = _sourced(500.0, src, unconfirmed=True, note="unknown GPU: placeholder, not measured")
        entry["tflops"] = {}
    tdp = g.get("power_limit_w") or (match.tdp_w.value if match else 300.0)
    entry["tdp_w"] = _sourced(tdp, src, unconfirmed=not g.get("power_limit_w"), note="nvidia-smi power.limit")
    return {k: v for k, v in entry.items() if v is not None}


def save_local_hardware(report: dict, home: str | Path | None = None) -> Path:
    import tomli_w

    from dsdeploy.catalog import user_home

    d = Path(home) if home else user_home()
    d.mkdir(parents=True, exist_ok=True)
    path = d / "local-hardware.toml"
    body = tomli_w.dumps(local_entries(report))
    path.write_text(
        "# Written by `dsdeploy doctor --save`: this machine's measured CPU (and GPU) as catalog id 'local'.\n"
        "# Merged by dsdeploy.catalog.load_catalog(); rerun doctor --save to refresh.\n" + body
    )
    return path
