"""Detect this machine: GPUs (nvidia-smi / rocm-smi), CPU, RAM, disk, engine packages.

Every probe degrades to "not found" instead of failing: `dsdeploy doctor` must give a useful report
on a CPU-only box, a container, or a machine without the vendor tools.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path


def _run(argv: list[str], timeout: float = 15.0) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


@dataclass
class Gpu:
    index: int
    name: str
    memory_mib: float
    vendor: str = "nvidia"
    driver: str | None = None
    power_limit_w: float | None = None


@dataclass
class GpuInfo:
    tool: str | None = None  # nvidia-smi | rocm-smi | None
    gpus: list[Gpu] = field(default_factory=list)
    driver: str | None = None
    cuda: str | None = None  # the highest CUDA version the driver supports (nvidia-smi header)
    topology: str | None = None  # `nvidia-smi topo -m`


def parse_nvidia_smi_query(text: str) -> list[Gpu]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            power = float(parts[4]) if len(parts) > 4 and parts[4] not in ("[N/A]", "N/A", "") else None
            gpus.append(
                Gpu(
                    index=int(parts[0]), name=parts[1], memory_mib=float(parts[2]), driver=parts[3], power_limit_w=power
                )
            )
        except ValueError:
            continue
    return gpus


def parse_cuda_version(header: str) -> str | None:
    m = re.search(r"CUDA Version:\s*([0-9.]+)", header)
    return m.group(1) if m else None


def probe_gpus(run=_run) -> GpuInfo:
    q = run(
        [
            "nvidia-smi",
            "--query-gpu=index,name,memory.total,driver_version,power.limit",
            "--format=csv,noheader,nounits",
        ]
    )
    if q is not None:
        gpus = parse_nvidia_smi_query(q)
        header = run(["nvidia-smi"]) or ""
        topo = run(["nvidia-smi", "topo", "-m"])
        return GpuInfo(
            tool="nvidia-smi",
            gpus=gpus,
            driver=gpus[0].driver if gpus else None,
            cuda=parse_cuda_version(header),
            topology=topo.strip() if topo else None,
        )
    r = run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json"])
    if r is not None:
        info = GpuInfo(tool="rocm-smi")
        try:
            data = json.loads(r)
        except json.JSONDecodeError:
            return info
        for key, card in sorted(data.items()):
            if not key.startswith("card"):
                if isinstance(card, dict) and "Driver version" in card:
                    info.driver = card["Driver version"]
                continue
            name = card.get("Card Series") or card.get("Card series") or card.get("Card model") or key
            vram = float(card.get("VRAM Total Memory (B)", 0) or 0) / 2**20
            info.gpus.append(Gpu(index=int(key[4:] or 0), name=str(name), memory_mib=vram, vendor="amd"))
        return info
    return GpuInfo()


@dataclass
class CpuInfo:
    model: str
    vendor: str
    logical_cpus: int
    physical_cores: int
    sockets: int
    numa_nodes: int
    flags: list[str]

    @property
    def matrix_isa(self) -> str:
        f = set(self.flags)
        if "amx_tile" in f or "amx_bf16" in f:
            return "amx"
        if "avx512f" in f:
            return "avx512"
        if "sve" in f:
            return "sve"
        if "asimd" in f or platform.machine() in ("aarch64", "arm64"):
            return "neon"
        return "avx2"


_CPU_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}  # /proc/cpuinfo vendor_id -> catalog vendor


def _cpuinfo_stanzas(cpuinfo: str) -> list[list[tuple[str, str]]]:
    """/proc/cpuinfo as one list of (key, value) pairs per logical CPU (stanzas end at a blank line)."""
    stanzas: list[list[tuple[str, str]]] = [[]]
    for line in cpuinfo.splitlines():
        if not line.strip():
            stanzas.append([])
            continue
        k, _, v = line.partition(":")
        stanzas[-1].append((k.strip(), v.strip()))
    return stanzas


def _first_value(stanzas: list[list[tuple[str, str]]], keys: tuple[str, ...]) -> str:
    """The first non-empty value under any of `keys` (x86 and Arm kernels name some fields differently)."""
    return next((v for stanza in stanzas for k, v in stanza if k in keys and v), "")


def _cores_and_sockets(stanzas: list[list[tuple[str, str]]]) -> tuple[set[tuple[str, str]], set[str]]:
    """Distinct (physical id, core id) pairs and physical ids; a stanza without either is not counted."""
    cores: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    for stanza in stanzas:
        ids = dict(stanza)  # the last line of a key wins
        phys, core = ids.get("physical id"), ids.get("core id")
        if phys is not None or core is not None:
            cores.add((phys or "0", core or str(len(cores))))
            sockets.add(phys or "0")
    return cores, sockets


def probe_cpu(cpuinfo: str | None = None) -> CpuInfo:
    if cpuinfo is None:
        cpuinfo = read_cpuinfo() or ""
    stanzas = _cpuinfo_stanzas(cpuinfo)
    model = _first_value(stanzas, ("model name", "Model Name"))
    vendor_id = _first_value(stanzas, ("vendor_id",))
    flags = _first_value(stanzas, ("flags", "Features")).split()
    cores, sockets = _cores_and_sockets(stanzas)
    logical = os.cpu_count() or 1
    vendor = _CPU_VENDORS.get(vendor_id, "arm" if platform.machine() in ("aarch64", "arm64") else "other")
    numa = len(list(Path("/sys/devices/system/node").glob("node[0-9]*"))) or 1
    return CpuInfo(
        model=model or platform.processor() or platform.machine(),
        vendor=vendor,
        logical_cpus=logical,
        physical_cores=len(cores) or logical,
        sockets=len(sockets) or 1,
        numa_nodes=numa,
        flags=sorted(set(flags)),
    )


def read_cpuinfo() -> str | None:
    """/proc/cpuinfo, or None where there is none (macOS, Windows, some sandboxes)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def matrix_flags(flags: list[str], source: str | None) -> dict:
    """The CPU's AMX and AVX-512 flags (/proc/cpuinfo names). AMX (amx_tile, amx_int8, amx_bf16:
    Sapphire Rapids and later Xeons) is what llama.cpp's AMX weight repacking needs; `known` is
    False where the flags could not be read, so "none" there means "unknown", not "absent"."""
    return {
        "known": source is not None and bool(flags),
        "source": source,
        "amx": sorted(f for f in flags if f.startswith("amx")),
        "avx512": sorted(f for f in flags if f.startswith("avx512")),
    }


_LLAMA_INFO_CHILD = (
    "import json, llama_cpp; "
    "print(json.dumps({'version': getattr(llama_cpp, '__version__', None), "
    "'system_info': llama_cpp.llama_print_system_info().decode(errors='replace')}))"
)


def parse_system_info(text: str) -> dict[str, str]:
    """`llama_print_system_info()` ("CPU : SSE3 = 1 | AVX2 = 1 | ... | REPACK = 1 |") as
    {feature: value}; the build lists the features it was compiled with."""
    out: dict[str, str] = {}
    for part in text.replace("\n", "|").split("|"):
        if "=" not in part:
            continue
        k, _, v = part.rpartition("=")
        name = k.split(":")[-1].strip()
        if name:
            out[name] = v.strip()
    return out


def probe_llama_build(timeout: float = 60.0) -> dict:
    """What the installed llama.cpp (llama-cpp-python) build uses, from `llama_print_system_info()`
    run in a child process: loading the native library can't crash doctor itself."""
    import importlib.util
    import sys

    if importlib.util.find_spec("llama_cpp") is None:
        return {"installed": False, "version": None, "system_info": None, "features": {}, "error": None}
    try:
        r = subprocess.run([sys.executable, "-c", _LLAMA_INFO_CHILD], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"installed": True, "version": None, "system_info": None, "features": {}, "error": str(exc)}
    if r.returncode != 0:
        from dsdeploy.serve.loading import describe_exit, engine_error_line

        err = f"{describe_exit(r.returncode)}: {engine_error_line(r.stderr)}"
        return {"installed": True, "version": None, "system_info": None, "features": {}, "error": err}
    try:
        data = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"installed": True, "version": None, "system_info": None, "features": {}, "error": "no answer"}
    info = data["system_info"].strip()
    return {
        "installed": True,
        "version": data.get("version"),
        "system_info": info,
        "features": parse_system_info(info),
        "error": None,
    }


def llama_loading_note(cpu_amx: list[str], features: dict[str, str]) -> str | None:
    """What the CPU and the build mean for `dsdeploy serve --extra-bufts` (issue #10)."""
    build_amx = any(k.startswith("AMX") and v == "1" for k, v in features.items())
    if build_amx and cpu_amx:
        return (
            "this llama.cpp build repacks weights into AMX buffers on this CPU; with llama-cpp-python 0.3.36 "
            "that aborted the DeepSeek (deepseek2) graph (GGML_ASSERT(*cur_backend_id != -1)). "
            "dsdeploy serve --extra-bufts auto (the default) probes and falls back to off"
        )
    if cpu_amx and features and not build_amx:
        return "the CPU has AMX but this llama.cpp build was compiled without it (no AMX repacking)"
    return None


def probe_ram() -> dict:
    out: dict[str, int | None] = {"total_bytes": None, "available_bytes": None}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("MemTotal", "MemAvailable"):
                out["total_bytes" if k == "MemTotal" else "available_bytes"] = int(v.split()[0]) * 1024
    except OSError:
        pass
    if out["total_bytes"] is None:
        try:
            out["total_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
    return out


def probe_disk(path: str | Path) -> dict:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    u = shutil.disk_usage(p)
    return {"path": str(p), "total_bytes": u.total, "free_bytes": u.free}


ENGINE_PACKAGES = {
    "vllm": ["vllm", "torch"],
    "sglang": ["sglang", "torch", "flashinfer-python"],
    "ktransformers": ["sglang", "kt-kernel", "torch"],
    "llama.cpp": [],
}
ENGINE_BINARIES = {"llama.cpp": ["llama-server"]}


def probe_packages(engine: str | None) -> dict:
    names = (
        ENGINE_PACKAGES.get(engine or "", []) if engine else sorted({p for v in ENGINE_PACKAGES.values() for p in v})
    )
    pk: dict[str, str | None] = {}
    for n in names:
        try:
            pk[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pk[n] = None
    bins = {b: shutil.which(b) for b in ENGINE_BINARIES.get(engine or "", [])}
    return {"packages": pk, "binaries": bins}


def os_release() -> dict:
    out = {"id": platform.system().lower(), "version_id": "", "pretty": platform.platform()}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            k, _, v = line.partition("=")
            v = v.strip().strip('"')
            if k == "ID":
                out["id"] = v
            elif k == "VERSION_ID":
                out["version_id"] = v
            elif k == "PRETTY_NAME":
                out["pretty"] = v
    except OSError:
        pass
    return out


def as_dict(obj) -> dict:
    return asdict(obj)
