#!/usr/bin/env python3
"""How much does `dsdeploy serve` cost over calling llama-cpp-python directly?

Same GGUF, same sampling (greedy, ignore EOS, fixed output length), same engine instances:
  - api:     `dsdeploy serve --parallel C --threads T` (a subprocess) driven by C closed-loop
             streaming clients on /v1/completions (a lean raw-socket client, so the client's own
             CPU use stays small);
  - direct:  C processes, each with its own `llama_cpp.Llama(n_threads=T)`, each running its share
             of the same prompts back to back, in-process, with
               * `engine`: the generation loop the server's workers run (dsdeploy.serve.worker.Engine),
                 i.e. the pure cost of the HTTP/IPC layer, and
               * `create_completion`: llama-cpp-python's own `create_completion(stream=True)`.
Tokens/s = all completion tokens / wall time; TTFT = request start -> first text token.
Runs alternate (api, engine, create_completion) `--repeats` times; medians are reported.

    python bench/serve_overhead.py [--model X.gguf] [--concurrency 1 4] [--requests 24] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_PROMPT = (
    "import os\nimport sys\n\n\ndef read_config(path):\n    with open(path) as f:\n"
    "        return f.read()\n\n\nclass Loader:\n    def __init__(self, root):\n        self.root = root\n"
)


def prompts(n: int) -> list[str]:
    return [f"# request {i}\n" + BASE_PROMPT for i in range(n)]


# ---- direct --------------------------------------------------------------------------------
def _direct_proc(model: str, n_ctx: int, threads: int, my_prompts: list[str], max_tokens: int, mode: str, barrier, out) -> None:
    from dsdeploy.serve.prompt import PromptBuilder
    from dsdeploy.serve.worker import Engine

    eng = Engine(model, n_ctx, threads)
    pb = PromptBuilder(model)
    llm = eng.llm
    eog_bias = {t: float("-inf") for t in eng.eog}
    results = []

    def run_one(text: str):
        t0 = time.perf_counter()
        first = None
        n = 0
        if mode == "engine":
            toks = pb.tokenize(text)
            req = {"id": "x", "tokens": toks, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True}
            box = {}

            def emit(ev):
                nonlocal first
                if first is None and ev.get("t"):
                    first = time.perf_counter()
                if "e" in ev:
                    box["n"] = ev["n"]

            eng.generate(req, set(), emit)
            n = box["n"]
        else:
            for chunk in llm.create_completion(
                text, max_tokens=max_tokens, temperature=0.0, stream=True, logit_bias=eog_bias
            ):
                if first is None and chunk["choices"][0]["text"]:
                    first = time.perf_counter()
                n += 1  # one chunk per token here (ASCII-ish output, no stop strings)
        return (first or time.perf_counter()) - t0, n

    run_one("# warm-up\n" + BASE_PROMPT)
    barrier.wait()
    t_start = time.perf_counter()
    for p in my_prompts:
        results.append(run_one(p))
    out.put((t_start, time.perf_counter(), results))


def run_direct(model: str, n_ctx: int, threads: int, conc: int, ps: list[str], max_tokens: int, mode: str) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(conc)
    out = ctx.Queue()
    shares = [ps[i::conc] for i in range(conc)]
    procs = [ctx.Process(target=_direct_proc, args=(model, n_ctx, threads, shares[i], max_tokens, mode, barrier, out)) for i in range(conc)]
    for p in procs:
        p.start()
    got = []
    while len(got) < len(procs):  # never wait forever on a child that died without reporting
        try:
            got.append(out.get(timeout=5))
        except queue.Empty:
            dead = [p for p in procs if p.exitcode is not None and p.exitcode != 0]
            if dead:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"{mode} process exited with code {dead[0].exitcode}")
    for p in procs:
        p.join()
    start = min(g[0] for g in got)
    end = max(g[1] for g in got)
    res = [r for g in got for r in g[2]]
    return _summary(res, end - start)


# ---- through the API -----------------------------------------------------------------------
_TEXT = re.compile(rb'"text":"[^"]')


async def _one_stream(host: str, port: int, key: str, body: bytes) -> tuple[float, int]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    buf = b""
    first = None
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if first is None and _TEXT.search(data):
            first = time.perf_counter()
        buf += data
    writer.close()
    tail = buf[buf.rfind(b'"usage":') :]
    n = json.loads(tail[len(b'"usage":') : tail.index(b"}") + 1])["completion_tokens"]
    return (first or time.perf_counter()) - t0, n


async def _drive(host: str, port: int, key: str, conc: int, ps: list[str], max_tokens: int) -> tuple[list, float]:
    queue = list(ps)
    results = []

    async def client():
        while queue:
            p = queue.pop(0)
            body = json.dumps({
                "prompt": p, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                "stream": True, "stream_options": {"include_usage": True},
            }).encode()
            results.append(await _one_stream(host, port, key, body))

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(conc)))
    return results, time.perf_counter() - t0


def start_server(model: str, n_ctx: int, threads: int, parallel: int, stream_interval_ms: float | None = None) -> tuple[subprocess.Popen, int, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "bench"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsdeploy.cli.main", "serve", "--model", model, "--port", str(port),
         "--api-key", key, "--parallel", str(parallel), "--threads", str(threads), "--n-ctx", str(n_ctx),
         "--max-concurrency", "256"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env=dict(os.environ, **({} if stream_interval_ms is None else {"DSDEPLOY_STREAM_INTERVAL_MS": str(stream_interval_ms)})),
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port, key
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become healthy")


def _cpu_s(pid: int) -> float:
    """user + system CPU seconds of one process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_api(port: int, key: str, conc: int, ps: list[str], max_tokens: int, server_pid: int | None = None) -> dict:
    asyncio.run(_drive("127.0.0.1", port, key, conc, ["# warm-up\n" + BASE_PROMPT] * conc, max_tokens))
    cpu0 = _cpu_s(server_pid) if server_pid else None
    res, wall = asyncio.run(_drive("127.0.0.1", port, key, conc, ps, max_tokens))
    out = _summary(res, wall)
    if cpu0 is not None:
        # the API process's own CPU (HTTP, SSE, IPC; not its engine workers) per completion token
        out["api_cpu_us_per_token"] = (_cpu_s(server_pid) - cpu0) / max(1, out["tokens"]) * 1e6
    return out


def _summary(res: list[tuple[float, int]], wall: float) -> dict:
    toks = sum(n for _, n in res)
    return {
        "tok_s": toks / wall,
        "ttft_p50_ms": statistics.median(t for t, _ in res) * 1000,
        "requests": len(res),
        "tokens": toks,
        "wall_s": wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="GGUF (default: the bundled tiny model)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--threads", type=int, default=1, help="threads per engine instance (both sides)")
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["api", "engine", "create_completion"])
    ap.add_argument("--stream-interval-ms", type=float, default=None,
                    help="the server's stream interval (default: its own default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.model is None:
        from dsdeploy.tinymodel import default_gguf_path

        args.model = str(default_gguf_path())
    ps = prompts(args.requests)
    table = {}
    for conc in args.concurrency:
        runs: dict[str, list[dict]] = {m: [] for m in args.modes}
        server = None
        if "api" in args.modes:
            server = start_server(args.model, args.n_ctx, args.threads, conc, args.stream_interval_ms)
        try:
            for _ in range(args.repeats):
                for mode in args.modes:
                    if mode == "api":
                        runs[mode].append(run_api(server[1], server[2], conc, ps, args.max_tokens, server[0].pid))
                    else:
                        runs[mode].append(run_direct(args.model, args.n_ctx, args.threads, conc, ps, args.max_tokens, mode))
        finally:
            if server:
                server[0].send_signal(signal.SIGTERM)
                server[0].wait(30)
        for mode, rs in runs.items():
            table[(conc, mode)] = {
                "tok_s": statistics.median(r["tok_s"] for r in rs),
                "ttft_p50_ms": statistics.median(r["ttft_p50_ms"] for r in rs),
                "runs": rs,
            }
            if rs and "api_cpu_us_per_token" in rs[0]:
                table[(conc, mode)]["api_cpu_us_per_token"] = statistics.median(r["api_cpu_us_per_token"] for r in rs)
    print(f"model {args.model}; {args.requests} requests x {args.max_tokens} tokens; threads/instance {args.threads}; "
          f"median of {args.repeats}; cpus {os.cpu_count()}; stream interval {args.stream_interval_ms}")
    print(f"{'conc':>4} {'mode':<18} {'tok/s':>9} {'p50 TTFT ms':>12} {'vs engine':>18} {'vs create_compl.':>18}")
    for conc in args.concurrency:
        for mode in args.modes:
            r = table[(conc, mode)]
            cmp = []
            for ref in ("engine", "create_completion"):
                b = table.get((conc, ref))
                if b and mode == "api":
                    cmp.append(f"{(r['tok_s'] / b['tok_s'] - 1) * 100:+.1f}% {r['ttft_p50_ms'] - b['ttft_p50_ms']:+.2f}ms")
                else:
                    cmp.append("")
            cpu = f"  API CPU {r['api_cpu_us_per_token']:.0f} us/token" if "api_cpu_us_per_token" in r else ""
            print(f"{conc:>4} {mode:<18} {r['tok_s']:>9.1f} {r['ttft_p50_ms']:>12.2f} {cmp[0]:>18} {cmp[1]:>18}{cpu}")
    if args.json:
        args.json.write_text(json.dumps({f"{c}/{m}": v for (c, m), v in table.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
