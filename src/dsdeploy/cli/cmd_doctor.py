"""`dsdeploy doctor`: detect this machine, measure it, compare with a plan, say what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dsdeploy.cli import options as opt
from dsdeploy.errors import UserError
from dsdeploy.planner.options import DEFAULTS, options_from


def _fmt_gb(b) -> str:
    return "?" if b is None else f"{b / 1e9:,.1f} GB"


def _gpu_lines(g: dict) -> list[str]:
    if not g["gpus"]:
        return ["GPUs: none found (no nvidia-smi or rocm-smi answered)"]
    L = [f"GPUs ({g['tool']}; driver {g['driver']}, CUDA {g['cuda']}):"]
    for x in g["gpus"]:
        L.append(f"  [{x['index']}] {x['name']}  {x['memory_mib'] * 2**20 / 1e9:,.1f} GB")
    if g["topology"]:
        L.append("  interconnect (nvidia-smi topo -m):")
        L += ["    " + line for line in g["topology"].splitlines()]
    return L


def _isa_and_llama_lines(r: dict) -> list[str]:
    """AMX / AVX-512 flags and what the llama.cpp build uses (issue #10)."""
    L = []
    isa = r["cpu"].get("isa")
    if isa is not None and isa["known"]:
        L.append(
            f"  AMX: {', '.join(isa['amx']) or 'none'}; AVX-512: {', '.join(isa['avx512']) or 'none'} ({isa['source']})"
        )
    elif isa is not None:
        L.append("  AMX / AVX-512: unknown (no CPU flags readable here, e.g. no /proc/cpuinfo)")
    lc = r.get("llama_cpp")
    if lc is None:
        return L
    if not lc["installed"]:
        L.append("llama.cpp build: llama-cpp-python not installed")
    elif lc["error"]:
        L.append(f"llama.cpp build: could not ask it ({lc['error']})")
    else:
        on = [k for k, v in lc["features"].items() if v == "1"]
        L.append(f"llama.cpp build (llama-cpp-python {lc['version']}): {' '.join(on) or lc['system_info']}")
    if lc.get("note"):
        L.append(f"  note: {lc['note']}")
    return L


def _machine_lines(r: dict) -> list[str]:
    c = r["cpu"]
    return [
        f"CPU: {c['model']} — {c['physical_cores']} physical cores / {c['logical_cpus']} logical, {c['sockets']} socket(s), "
        f"{c['numa_nodes']} NUMA node(s), matrix ISA {c['matrix_isa']} ({', '.join(c['flags_of_note']) or 'no AVX2'})",
        *_isa_and_llama_lines(r),
        f"RAM: {_fmt_gb(r['ram']['total_bytes'])} total, {_fmt_gb(r['ram']['available_bytes'])} available",
        f"Disk: {_fmt_gb(r['disk']['free_bytes'])} free of {_fmt_gb(r['disk']['total_bytes'])} at {r['disk']['path']}",
    ]


def _measured_lines(m: dict) -> list[str]:
    mt = m["matmul_tflops"]
    mm = f"Measured matmul: fp32 {mt['fp32'] * 1e3:,.1f} GFLOPS (n={mt['fp32_n']})"
    if "bf16" in mt:
        mm += f", bf16 {mt['bf16'] * 1e3:,.2f} GFLOPS (n={mt['bf16_n']}, {mt['bf16_via']})"
    d = m["disk"]
    how = "O_DIRECT, page cache bypassed" if d["cache_bypassed"] else "fadvise(DONTNEED); may include page-cache hits"
    return [
        f"Measured memory bandwidth: copy {m['memory']['copy_gbs']:,.1f} GB/s, read {m['memory']['read_gbs']:,.1f} GB/s "
        f"(best of {m['memory']['runs']}, {m['memory']['threads']} threads)",
        mm,
        f"Measured disk read: {d['read_gbs']:,.2f} GB/s over {d['file_mb']} MB at {d['path']} ({how})",
    ]


def _software_line(r: dict) -> list[str]:
    sw = r["software"]
    if not (sw["packages"] or sw["binaries"]):
        return []
    items = [f"{k} {v or 'MISSING'}" for k, v in [*sw["packages"].items(), *sw["binaries"].items()]]
    return [f"Engine software{' (' + r['engine'] + ')' if r['engine'] else ''}: " + ", ".join(items)]


def _plan_lines(r: dict) -> list[str]:
    if "plan" not in r:
        return []
    L = ["", f"Plan: {r['plan']['describe']} — {r['plan']['reason']}"]
    for ch in r["checks"]:
        mark = {"ok": "ok     ", "missing": "MISSING", "unknown": "?      "}[ch["status"]]
        L.append(f"  {mark} {ch['check']}: have {ch['have']}; need {ch['need']}")
    return L


def _install_lines(r: dict) -> list[str]:
    if not r["install"]:
        return []
    L = ["", "Install steps for what is missing:"]
    for what, steps in r["install"].items():
        L.append(f"  {what}:")
        L += ["    " + s for s in steps]
    return L


def render_text(r: dict) -> str:
    L = [f"dsdeploy doctor — {r['date']} — {r['os']['pretty']}, Python {r['python']}", ""]
    L += _gpu_lines(r["gpu"]) + _machine_lines(r)
    if "measured" in r:
        L += _measured_lines(r["measured"])
    L += _software_line(r) + _plan_lines(r) + _install_lines(r)
    L += ["", "Notes:"] + ["  " + n for n in r["requirements"]]
    return "\n".join(L) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor(
        model_path: Path = typer.Option(
            Path("."), "--model-path", help="Where the weights live (disk space and read speed are measured there)."
        ),
        engine: str | None = typer.Option(None, "--engine", help="Engine to check packages for (default: the plan's)."),
        plan_file: Path | None = typer.Option(
            None, "--plan", help="A plan JSON (dsdeploy plan --json, or plan options as keys)."
        ),
        model: opt.Model = DEFAULTS.model,
        weights: opt.Weights = DEFAULTS.weights,
        kv_dtype: opt.KvDtype = DEFAULTS.kv_dtype,
        accelerator: opt.Accelerator = DEFAULTS.accelerator,
        count: opt.Count = DEFAULTS.count,
        nodes: opt.Nodes = DEFAULTS.nodes,
        placement: opt.Placement = DEFAULTS.placement,
        cpu: opt.Cpu = DEFAULTS.cpu,
        cpu_sockets: opt.CpuSockets = DEFAULTS.cpu_sockets,
        dram_gb: opt.DramGb = DEFAULTS.dram_gb,
        input_len: opt.InputLen = DEFAULTS.input_len,
        output_len: opt.OutputLen = DEFAULTS.output_len,
        concurrency: opt.Concurrency = DEFAULTS.concurrency,
        save: bool = typer.Option(
            False,
            "--save",
            help="Store the measured CPU (and GPU) as catalog id 'local' in $DSDEPLOY_HOME/local-hardware.toml.",
        ),
        measure: bool = typer.Option(
            True, "--measure/--no-measure", help="Run the bandwidth, matmul and disk measurements (a few seconds)."
        ),
        disk_mb: int = typer.Option(256, "--disk-mb", help="Size of the temporary file for the disk read test."),
        as_json: opt.AsJson = False,
    ) -> None:
        """Report GPUs, CPU, RAM, disk and engine packages; measure bandwidth, matmul and disk speed; check a plan."""
        from dsdeploy.doctor import run_doctor, save_local_hardware
        from dsdeploy.engines.options import from_plan_json, resolve

        if save and not measure:
            raise UserError("--save stores measured numbers; drop --no-measure")
        if disk_mb < 16:
            raise UserError("--disk-mb must be at least 16")
        po = None
        if plan_file is not None:
            po = from_plan_json(plan_file)
        elif any(v is not None for v in (model, weights, accelerator, placement, cpu)):
            po = options_from(locals())
        dep = mem = None
        if po is not None:
            dep, mem, _ = resolve(po)
            engine = engine or dep.engine.id
        report = run_doctor(model_path, engine=engine, measure=measure, disk_mb=disk_mb, dep=dep, mem=mem)
        if save:
            path = save_local_hardware(report)
            report["saved"] = str(path)
        if as_json:
            typer.echo(json.dumps(report, indent=2, default=str))
        else:
            typer.echo(render_text(report), nl=False)
            if save:
                typer.echo(f"saved: {report['saved']} (use --cpu local)")
