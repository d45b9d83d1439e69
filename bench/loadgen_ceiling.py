#!/usr/bin/env python3
"""The load generator's own ceiling: `dsdeploy bench`'s request path against the zero-work
streaming server (bench/zero_server.py, a separate process) on loopback.

For each scenario (concurrent streams, per-token delay of the server, output tokens) it reports
the streamed tokens/s achieved, the offered rate (streams / delay), how far the measured TPOT
drifts above the server's pacing (the generator's own lag), and the CPU seconds each process
spent, so the result can be read on a machine shared with other work: tokens per CPU-second of
the generator is its capacity on one core.

    .venv/bin/python bench/loadgen_ceiling.py                  # default scenarios
    .venv/bin/python bench/loadgen_ceiling.py --scenario 500:20:64 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dsdeploy.bench.metrics import level_metrics  # noqa: E402
from dsdeploy.bench.runner import BenchConfig, Runner  # noqa: E402

DEFAULT_SCENARIOS = ["500:20:64", "500:0:256", "64:0:256"]


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_server(delay_ms: float, uvloop: bool, cpu: int | None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, str(ROOT / "bench" / "zero_server.py"), "--port", "0",
           "--token-delay-ms", str(delay_ms), "--batch-ticks"]  # fmt: skip
    if uvloop:
        cmd.append("--uvloop")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if cpu is not None:
        os.sched_setaffinity(p.pid, {cpu})
    return p, f"http://127.0.0.1:{int(line.split()[1])}"


def run_scenario(conc: int, delay_ms: float, out_len: int, requests_per_stream: int, uvloop: bool, pin: bool) -> dict:
    srv, url = start_server(delay_ms, uvloop, 1 if pin else None)
    try:
        cfg = BenchConfig(base_url=url, concurrencies=[conc], num_requests=conc * requests_per_stream,
                          input_len=16, output_len=out_len, warmup=min(conc, 32), timeout_s=60)  # fmt: skip
        runner = Runner(cfg, log=lambda m: print(m, file=sys.stderr))
        cpu0, srv0, t0 = _self_cpu_s(), _proc_cpu_s(srv.pid), time.perf_counter()
        levels = asyncio.run(runner.sweep())
        wall = time.perf_counter() - t0
        cpu1, srv1 = _self_cpu_s(), _proc_cpu_s(srv.pid)
    finally:
        srv.terminate()
        srv.wait(5)
    lv = levels[0]
    m = level_metrics(lv.results, lv.duration_s)
    gen_cpu = cpu1 - cpu0
    toks = m["total_output_tokens"]
    return {
        "concurrency": conc,
        "server_token_delay_ms": delay_ms,
        "output_len": out_len,
        "completed": m["completed"],
        "errors": m["errors"],
        "errors_by_type": m["errors_by_type"],
        "duration_s": round(m["duration_s"], 3),
        "output_tok_s": round(m["output_throughput"], 1),
        "offered_tok_s": round(conc * 1000 / delay_ms, 1) if delay_ms else None,
        "tpot_ms_mean": round(m["tpot_ms"]["mean"], 3),
        "tpot_ms_p99": round(m["tpot_ms"]["p99"], 3),
        "itl_ms_p99": round(m["itl_ms"]["p99"], 3),
        "ttft_ms_p50": round(m["ttft_ms"]["p50"], 3),
        "generator_cpu_s": round(gen_cpu, 2),
        "server_cpu_s": round(srv1 - srv0, 2),
        "wall_s_incl_setup": round(wall, 2),
        # whole-run tokens (includes warm-up + probes, a small share) per generator CPU-second
        "tok_per_generator_cpu_s": round(toks / gen_cpu, 0) if gen_cpu else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", help="STREAMS:DELAY_MS:OUTPUT_TOKENS (repeatable)")
    ap.add_argument("--requests-per-stream", type=int, default=4)
    ap.add_argument("--uvloop", action="store_true", help="uvloop in both processes (if installed)")
    ap.add_argument("--pin", action="store_true", help="pin the server to CPU 1 and the generator to CPU 0")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.uvloop:
        try:
            import uvloop  # type: ignore

            uvloop.install()
        except ImportError:
            print("uvloop not installed; using asyncio", file=sys.stderr)
    if a.pin:
        os.sched_setaffinity(0, {0})
    out = []
    for sc in a.scenario or DEFAULT_SCENARIOS:
        conc, delay, n = sc.split(":")
        r = run_scenario(int(conc), float(delay), int(n), a.requests_per_stream, a.uvloop, a.pin)
        out.append(r)
        if not a.json:
            print(
                f"{r['concurrency']:4d} streams, server {r['server_token_delay_ms']:g} ms/token, {r['output_len']} tokens: "
                f"{r['output_tok_s']:,.0f} tok/s (offered {r['offered_tok_s'] or 'max'}), "
                f"TPOT mean {r['tpot_ms_mean']} ms p99 {r['tpot_ms_p99']} ms, errors {r['errors']}, "
                f"generator CPU {r['generator_cpu_s']} s, server CPU {r['server_cpu_s']} s, "
                f"{r['tok_per_generator_cpu_s']:,.0f} tok per generator CPU-s",
                flush=True,
            )
    info = {"cpus": os.cpu_count(), "loadavg_after": os.getloadavg(), "scenarios": out}
    if a.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"cpus {info['cpus']}, load average after {tuple(round(x, 2) for x in info['loadavg_after'])}")


if __name__ == "__main__":
    main()
