#!/usr/bin/env python3
"""How much does `dsdeploy serve` cost over calling llama-cpp-python directly?

Same GGUF, same sampling (greedy, EOS ignored, fixed output length), same prompts, same number of
engine instances with the same threads (C instances x T threads at concurrency C), three arms:

  - api:     `dsdeploy serve --parallel C --threads T` (a subprocess), driven by C closed-loop
             streaming clients on /v1/completions. The client is a lean raw-socket HTTP/1.1 client
             with one keep-alive connection per client (as the `openai` client keeps its
             connections), so its own CPU use stays small.
  - engine:  C processes, each with its own `llama_cpp.Llama(n_threads=T)`, running the generation
             loop the server's workers run (dsdeploy.serve.worker.Engine) in-process: api vs
             engine is the pure cost of HTTP, the API process and the process hop.
  - create_completion: C processes calling llama-cpp-python's own
             `Llama.create_completion(stream=True)`: "llama-cpp-python called directly".

Design, because this 2-vCPU VM's speed drifts by 10-30 % from minute to minute (a prefill of the
same prompt takes 12 or 17 ms at random): every arm's processes are started once and stay up, and
the arms take turns in short **rounds** (each client runs `--per-client` requests per turn; the
order of the arms rotates every round). So the drift hits all arms alike, and each round gives a
paired sample.

Reported per arm: tok/s = all completion tokens / the arm's summed round wall time; TTFT p50 over
all its requests (request start -> first text token; for api, the start is before the request is
written). For api against each direct arm: the difference of those two, and a 90 % interval from a
bootstrap over rounds (rounds resampled with replacement, pairs kept together).

    python bench/serve_overhead.py [--model X.gguf] [--concurrency 1 4] [--rounds 16]
        [--per-client 4] [--max-tokens 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
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
MODES = ("api", "engine", "create_completion")


def prompts(n: int) -> list[str]:
    return [f"# request {i}\n" + BASE_PROMPT for i in range(n)]


# ---- direct: a persistent process per engine instance, fed prompts over a pipe ---------------
def _direct_proc(model: str, n_ctx: int, threads: int, mode: str, conn, extra_bufts: bool) -> None:
    from dsdeploy.serve.prompt import PromptBuilder
    from dsdeploy.serve.worker import Engine

    eng = Engine(model, n_ctx, threads, extra_bufts=extra_bufts)
    pb = PromptBuilder(model)
    llm = eng.llm
    eog_bias = {t: float("-inf") for t in eng.eog}
    clock = time.perf_counter

    def run_one(text: str, max_tokens: int) -> tuple[float, int]:
        t0 = clock()
        first = None
        n = 0
        if mode == "engine":
            req = {
                "id": "x",
                "tokens": pb.tokenize(text),
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "ignore_eos": True,
            }
            box = {}

            def emit_text(text: str) -> None:
                nonlocal first
                if first is None and text:
                    first = clock()

            eng.generate(req, (), lambda ev: box.update(ev), emit_text)
            n = box["n"]
        else:
            for chunk in llm.create_completion(
                text, max_tokens=max_tokens, temperature=0.0, stream=True, logit_bias=eog_bias
            ):
                if first is None and chunk["choices"][0]["text"]:
                    first = clock()
                n += 1  # one chunk per token here (no stop strings, no held-back bytes)
        return (first or clock()) - t0, n

    run_one("# warm-up\n" + BASE_PROMPT, 8)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        my_prompts, max_tokens = msg
        t_start = clock()
        res = [run_one(p, max_tokens) for p in my_prompts]
        conn.send((t_start, clock(), res))


class DirectArm:
    def __init__(self, model: str, n_ctx: int, threads: int, conc: int, mode: str) -> None:
        from dsdeploy.serve.loading import default_mode, resolve_extra_bufts

        # the loading path `dsdeploy serve` takes (--extra-bufts, $DSDEPLOY_EXTRA_BUFTS), decided once
        bufts = resolve_extra_bufts(default_mode(), model, threads, log=lambda m: print(m, file=sys.stderr)).use
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(conc):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_direct_proc, args=(model, n_ctx, threads, mode, theirs, bufts), daemon=True)
            p.start()
            self.conns.append(mine)
            self.procs.append(p)
        for c, p in zip(self.conns, self.procs):
            if not c.poll(180):
                raise SystemExit(f"{mode} process did not start (exit code {p.exitcode})")
            c.recv()

    def run(self, shares: list[list[str]], max_tokens: int) -> tuple[list, float]:
        for c, share in zip(self.conns, shares):
            c.send((share, max_tokens))
        got = []
        for c, p in zip(self.conns, self.procs):
            while not c.poll(5):
                if p.exitcode is not None:
                    raise SystemExit(f"a direct process exited with code {p.exitcode}")
            got.append(c.recv())
        wall = max(g[1] for g in got) - min(g[0] for g in got)
        return [r for g in got for r in g[2]], wall

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(10)
            if p.exitcode is None:
                p.kill()


# ---- through the API ---------------------------------------------------------------------------
_TEXT = re.compile(rb'"text":"[^"]')
_END = b"\r\n0\r\n\r\n"  # the last chunk of a chunked HTTP/1.1 body (JSON-escaped SSE never holds \r\n)


class ApiClient:
    """One keep-alive HTTP/1.1 connection, streaming /v1/completions requests one at a time.

    Not `dsdeploy.bench.rawhttp.RawClient` on purpose: that client parses every SSE event with
    json.loads (measured 6.9 µs per token against 0.26 µs for this one's byte search), and on a
    2-vCPU machine the client's CPU is taken from the engines this bench compares.

    A connection the server closed while idle (uvicorn drops keep-alive connections after 30 s,
    e.g. while the other arms take their turns) is reopened and the request sent again, with the
    clock restarted so the reconnect stays out of the TTFT. A reply that is not a 200 stream
    (401, 429, ...) is read by its Content-Length and reported."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader = self.writer = None

    async def one(self, body: bytes) -> tuple[float, int]:
        for attempt in (1, 2):
            try:
                return await self._one(body)
            except _Dropped:
                self.close()
                if attempt == 2:
                    raise RuntimeError("the server closed the connection before answering, twice") from None
        raise AssertionError("unreachable")

    async def _one(self, body: bytes) -> tuple[float, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        t0 = time.perf_counter()
        self.writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {self.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        buf = b""
        first = None
        head_end = -1
        while True:
            try:
                data = await self.reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                if not buf:
                    raise _Dropped()
                raise RuntimeError(f"the server closed the connection mid-response: {buf[:200]!r}")
            if first is None and _TEXT.search(buf[-16:] + data):  # a match may straddle two reads
                first = time.perf_counter()
            buf += data
            if head_end < 0:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0 and not buf.startswith(b"HTTP/1.1 200"):
                    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:head_end])
                    need = head_end + 4 + (int(m.group(1)) if m else 0)
                    while len(buf) < need:
                        more = await self.reader.read(65536)
                        if not more:
                            break
                        buf += more
                    raise RuntimeError(f"server answered {buf[:300]!r}")
            if buf.endswith(_END):
                break
        tail = buf[buf.rfind(b'"usage":') :]
        n = json.loads(tail[len(b'"usage":') : tail.index(b"}") + 1])["completion_tokens"]
        return (first or time.perf_counter()) - t0, n

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _Dropped(Exception):
    """The connection was closed before any byte of the reply arrived."""


class ApiArm:
    def __init__(
        self,
        model: str,
        n_ctx: int,
        threads: int,
        conc: int,
        stream_interval_ms: float | None,
        serve_args: list[str] = (),
    ) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.key = "bench"
        env = dict(os.environ)
        if stream_interval_ms is not None:
            env["DSDEPLOY_STREAM_INTERVAL_MS"] = str(stream_interval_ms)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dsdeploy.cli.main",
                "serve",
                "--model",
                model,
                "--port",
                str(self.port),
                "--api-key",
                self.key,
                "--parallel",
                str(conc),
                "--threads",
                str(threads),
                "--n-ctx",
                str(n_ctx),
                "--max-concurrency",
                "256",
                "--log-level",
                "warning",
                *serve_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        self._wait_healthy()
        try:  # the client's CPU competes with the engines on a small machine: keep it lean
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        self.clients = [ApiClient("127.0.0.1", self.port, self.key) for _ in range(conc)]
        self.run([["# warm-up\n" + BASE_PROMPT]] * conc, 8)

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.proc.kill()
        raise SystemExit("server did not become healthy")

    def run(self, shares: list[list[str]], max_tokens: int) -> tuple[list, float]:
        async def client(c: ApiClient, share: list[str]) -> list:
            out = []
            for p in share:
                body = json.dumps(
                    {
                        "prompt": p,
                        "max_tokens": max_tokens,
                        "temperature": 0,
                        "ignore_eos": True,
                        "stream": True,
                        "stream_options": {"include_usage": True},
                    }
                ).encode()
                out.append(await c.one(body))
            return out

        async def drive():
            t0 = time.perf_counter()
            got = await asyncio.gather(*(client(c, s) for c, s in zip(self.clients, shares)))
            return [r for g in got for r in g], time.perf_counter() - t0

        return self.loop.run_until_complete(drive())

    def scrape(self) -> dict[str, float]:
        """The server's TTFT and prefill histograms' sums and counts, from /metrics."""
        import httpx

        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        want = (
            "dsdeploy_time_to_first_token_seconds_sum",
            "dsdeploy_time_to_first_token_seconds_count",
            "dsdeploy_request_prefill_time_seconds_sum",
            "dsdeploy_request_prefill_time_seconds_count",
        )
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in want:
                out[name] = float(value)
        return out

    def cpu_s(self) -> float:
        """The API process's own user + system CPU seconds (not its engine workers')."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.loop.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---- statistics ----------------------------------------------------------------------------
def arm_stats(rounds: list[tuple[list, float]]) -> dict:
    reqs = [r for res, _ in rounds for r in res]
    tokens = sum(n for _, n in reqs)
    wall = sum(w for _, w in rounds)
    return {
        "tok_s": tokens / wall,
        "ttft_p50_ms": statistics.median(t for t, _ in reqs) * 1000,
        "requests": len(reqs),
        "tokens": tokens,
        "wall_s": wall,
    }


def paired(a: list, b: list, boot: int = 2000, seed: int = 0) -> dict:
    """api (a) against a direct arm (b): relative tok/s and p50 TTFT difference, each with a 90 %
    bootstrap interval over rounds (the i-th round of a and of b stay together)."""

    def diff(idx):
        sa = arm_stats([a[i] for i in idx])
        sb = arm_stats([b[i] for i in idx])
        return (sa["tok_s"] / sb["tok_s"] - 1) * 100, sa["ttft_p50_ms"] - sb["ttft_p50_ms"]

    point = diff(range(len(a)))
    rng = random.Random(seed)
    n = len(a)
    samples = [diff([rng.randrange(n) for _ in range(n)]) for _ in range(boot)]
    tp = sorted(s[0] for s in samples)
    tt = sorted(s[1] for s in samples)
    lo, hi = int(0.05 * boot), int(0.95 * boot) - 1
    return {
        "tok_s_pct": point[0],
        "tok_s_pct_90": [tp[lo], tp[hi]],
        "ttft_ms": point[1],
        "ttft_ms_90": [tt[lo], tt[hi]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="GGUF (default: the bundled tiny model)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--threads", type=int, default=1, help="threads per engine instance (every arm)")
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=4, help="requests per client per arm per round")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument(
        "--stream-interval-ms", type=float, default=None, help="the server's stream interval (default: its own default)"
    )
    ap.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for `dsdeploy serve` (repeat), e.g. --serve-arg=--engine-nice=5",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.model is None:
        from dsdeploy.tinymodel import default_gguf_path

        args.model = str(default_gguf_path())
    report: dict = {
        "model": args.model,
        "rounds": args.rounds,
        "per_client": args.per_client,
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "stream_interval_ms": args.stream_interval_ms,
        "serve_args": args.serve_arg,
        "results": {},
    }
    print(
        f"model {args.model}; {args.rounds} rounds x {args.per_client} requests per client per arm; "
        f"{args.max_tokens} tokens each; threads/instance {args.threads}; cpus {os.cpu_count()}"
    )
    for conc in args.concurrency:
        n_per_round = conc * args.per_client
        ps = prompts(args.rounds * n_per_round)
        arms = {}
        try:
            for mode in args.modes:  # start everything first; then only one arm works at a time
                arms[mode] = (
                    ApiArm(args.model, args.n_ctx, args.threads, conc, args.stream_interval_ms, args.serve_arg)
                    if mode == "api"
                    else DirectArm(args.model, args.n_ctx, args.threads, conc, mode)
                )
            runs: dict[str, list] = {m: [] for m in args.modes}
            cpu = client_cpu = 0.0
            m0 = arms["api"].scrape() if "api" in arms else None
            for r in range(args.rounds):
                mine = ps[r * n_per_round : (r + 1) * n_per_round]
                shares = [mine[i::conc] for i in range(conc)]
                order = args.modes[r % len(args.modes) :] + args.modes[: r % len(args.modes)]
                for mode in order:
                    c0 = arms[mode].cpu_s() if mode == "api" else 0.0
                    t0 = os.times()
                    runs[mode].append(arms[mode].run(shares, args.max_tokens))
                    if mode == "api":
                        cpu += arms[mode].cpu_s() - c0
                        t1 = os.times()  # this process is the api arm's client
                        client_cpu += (t1.user - t0.user) + (t1.system - t0.system)
            m1 = arms["api"].scrape() if "api" in arms else None
        finally:
            for arm in arms.values():
                arm.close()
        out = {m: arm_stats(rs) for m, rs in runs.items()}
        if m0 is not None:
            d = {k: m1[k] - m0.get(k, 0.0) for k in m1}
            reqs = [t for res, _ in runs["api"] for t, _ in res]
            client = statistics.fmean(reqs) * 1000
            server = (
                d["dsdeploy_time_to_first_token_seconds_sum"] / d["dsdeploy_time_to_first_token_seconds_count"] * 1000
            )
            prefill = (
                d["dsdeploy_request_prefill_time_seconds_sum"] / d["dsdeploy_request_prefill_time_seconds_count"] * 1000
            )
            # means add up, so the client's TTFT splits into: the engine's own prefill; the API
            # process's share from the handler starting to the first token leaving (queue, dispatch,
            # the pipe and the SSE write), and the rest (connect, HTTP parsing before the handler,
            # delivery to the client)
            out["api"]["ttft_mean_split_ms"] = {
                "client_observed": client,
                "engine_prefill": prefill,
                "api_handler_to_first_token_minus_prefill": server - prefill,
                "outside_handler": client - server,
            }
        if "api" in out:
            out["api"]["api_cpu_us_per_token"] = cpu / max(1, out["api"]["tokens"]) * 1e6
            out["api"]["client_cpu_us_per_token"] = client_cpu / max(1, out["api"]["tokens"]) * 1e6
            for ref in ("engine", "create_completion"):
                if ref in runs:
                    out["api"][f"vs_{ref}"] = paired(runs["api"], runs[ref])
        out["per_round"] = {m: [arm_stats([x]) for x in rs] for m, rs in runs.items()}
        report["results"][str(conc)] = out
        print(f"\nconcurrency {conc}: {len(runs[args.modes[0]][0][0]) * args.rounds} requests per arm")
        print(f"  {'arm':<18} {'tok/s':>8} {'p50 TTFT ms':>12}")
        for m in args.modes:
            print(f"  {m:<18} {out[m]['tok_s']:>8.1f} {out[m]['ttft_p50_ms']:>12.2f}")
        if "api" in out:
            print(
                f"  CPU per completion token: API process {out['api']['api_cpu_us_per_token']:.0f} us, "
                f"bench client {out['api']['client_cpu_us_per_token']:.0f} us"
            )
            sp = out["api"].get("ttft_mean_split_ms")
            if sp:
                print(
                    f"  api TTFT, mean {sp['client_observed']:.2f} ms = engine prefill {sp['engine_prefill']:.2f} + "
                    f"API handler beyond prefill {sp['api_handler_to_first_token_minus_prefill']:.2f} + "
                    f"outside the handler (connect, HTTP, delivery) {sp['outside_handler']:.2f}"
                )
            for ref in ("engine", "create_completion"):
                d = out["api"].get(f"vs_{ref}")
                if d:
                    print(
                        f"  api vs {ref:<17} tok/s {d['tok_s_pct']:+6.1f} % [90 %: {d['tok_s_pct_90'][0]:+.1f}, "
                        f"{d['tok_s_pct_90'][1]:+.1f}]   p50 TTFT {d['ttft_ms']:+6.2f} ms "
                        f"[90 %: {d['ttft_ms_90'][0]:+.2f}, {d['ttft_ms_90'][1]:+.2f}]"
                    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
