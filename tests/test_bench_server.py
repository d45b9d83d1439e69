"""`dsdeploy bench` against real servers on 127.0.0.1: the zero-work streaming server of
bench/zero_server.py, started as a subprocess on a free port (no HTTP mocks)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dsdeploy.bench.metrics import level_metrics, request_tpot
from dsdeploy.bench.record import COLUMNS, vocabulary
from dsdeploy.bench.runner import BenchConfig, Runner

ROOT = Path(__file__).resolve().parents[1]
ZERO = ROOT / "bench" / "zero_server.py"


class ZeroServer:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(ZERO), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"zero server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def zero_server(request):
    servers = []

    def start(*args: str) -> ZeroServer:
        s = ZeroServer(*args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "bench", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def bench_json(*args: str) -> dict:
    p = run_cli(*args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("transport", ["raw", "httpx"])
def test_self_consistency_and_tpot_per_request(zero_server, transport):
    srv = zero_server("--ttft-ms", "20", "--token-delay-ms", "5")
    cfg = BenchConfig(base_url=srv.base_url, concurrencies=[1, 4], num_requests=8, input_len=32,
                      output_len=12, warmup=1, transport=transport)  # fmt: skip
    runner = Runner(cfg, log=lambda m: None)
    levels = asyncio.run(runner.sweep())
    assert [lv.concurrency for lv in levels] == [1, 4]
    assert runner.calibration["method"] == "usage" and runner.calibration["words"] == 32
    for lv in levels:
        assert len(lv.results) == 8 and all(r.success for r in lv.results)
        tpots = []
        for r in lv.results:
            assert r.output_tokens == 12 and r.prompt_tokens == 32
            assert len(r.itl) == 11  # one gap per token after the first
            assert r.latency == pytest.approx(r.ttft + sum(r.itl), abs=1e-9)
            t = request_tpot(r.latency, r.ttft, r.output_tokens)
            assert t == pytest.approx((r.latency - r.ttft) / 11)
            assert t > 0.004  # the server paces 5 ms per token (no upper bound: the box may be busy)
            assert r.ttft >= 0.019
            tpots.append(t)
        m = level_metrics(lv.results, lv.duration_s)
        assert m["output_throughput"] == pytest.approx(m["total_output_tokens"] / m["duration_s"])
        assert m["total_output_tokens"] == 8 * 12
        assert m["tpot_ms"]["mean"] == pytest.approx(1000 * sum(tpots) / len(tpots))
        # the level lasts at least as long as its requests laid end to end per worker
        assert m["duration_s"] >= max(r.latency for r in lv.results)


def test_cli_json_keys_and_consistency(zero_server):
    srv = zero_server("--token-delay-ms", "2")
    d = bench_json(srv.base_url, "--concurrency", "1,2", "--num-requests", "6", "--input-len", "16",
                   "--output-len", "16", "--slo-ttft-ms", "1000", "--slo-tpot-ms", "1000")  # fmt: skip
    assert len(d["levels"]) == 2
    for lv in d["levels"]:
        for k in ("concurrency", "completed", "errors", "duration_s", "request_throughput",
                  "output_throughput", "total_token_throughput", "ttft_ms", "tpot_ms", "itl_ms",
                  "e2e_ms", "goodput", "errors_by_type"):  # fmt: skip
            assert k in lv
        for k in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            assert set(lv[k]) == {"mean", "p50", "p90", "p99"}
            assert lv[k]["p50"] <= lv[k]["p90"] <= lv[k]["p99"]
        assert lv["completed"] == 6 and lv["errors"] == 0 and lv["errors_by_type"] == {}
        assert lv["output_throughput"] == pytest.approx(lv["total_output_tokens"] / lv["duration_s"])
        assert lv["total_output_tokens"] == 6 * 16
        assert lv["request_throughput"] == pytest.approx(6 / lv["duration_s"])
        assert lv["goodput"] == pytest.approx(lv["request_throughput"])  # every request is good
        assert lv["tpot_ms"]["mean"] > 1.5  # the server paces 2 ms per token


def test_chat_endpoint_and_rate_mode(zero_server):
    srv = zero_server("--token-delay-ms", "1")
    d = bench_json(srv.base_url, "--endpoint", "chat", "--request-rate", "50", "--num-requests", "10",
                   "--input-len", "8", "--output-len", "5")  # fmt: skip
    lv = d["levels"][0]
    assert lv["completed"] == 10 and lv["request_rate"] == 50
    assert lv["total_output_tokens"] == 50  # usage.completion_tokens, not the role chunk


@pytest.mark.parametrize("transport", ["raw", "httpx"])
def test_errors_counted_500_and_dropped(zero_server, transport):
    srv = zero_server("--fail-every", "3", "--token-delay-ms", "1")
    d = bench_json(srv.base_url, "--concurrency", "2", "--num-requests", "9", "--output-len", "8",
                   "--warmup", "0", "--transport", transport)  # fmt: skip
    lv = d["levels"][0]
    # generation requests 1 and 2 are the calibration probes; the sweep's are 3..11
    assert lv["errors_by_type"] == {"http_500": 3}
    assert lv["completed"] == 6 and lv["errors"] == 3

    srv2 = zero_server("--drop-every", "2", "--token-delay-ms", "1")
    d = bench_json(srv2.base_url, "--concurrency", "1", "--num-requests", "6", "--output-len", "8",
                   "--warmup", "0", "--transport", transport)  # fmt: skip
    lv = d["levels"][0]
    assert lv["errors_by_type"] == {"dropped_stream": 3}  # sweep requests 3..8, even ones drop
    assert lv["completed"] == 3
    assert lv["output_throughput"] == pytest.approx(3 * 8 / lv["duration_s"])


@pytest.mark.parametrize("transport", ["raw", "httpx"])
def test_timeout_counted(zero_server, transport):
    srv = zero_server("--token-delay-ms", "400")
    d = bench_json(srv.base_url, "--concurrency", "1", "--num-requests", "2", "--output-len", "3",
                   "--warmup", "0", "--timeout", "0.2", "--input-len", "4", "--transport", transport)  # fmt: skip
    lv = d["levels"][0]
    assert lv["errors_by_type"] == {"timeout": 2} and lv["completed"] == 0


def test_no_usage_counts_token_events(zero_server):
    srv = zero_server("--no-usage")
    p = run_cli(srv.base_url, "--num-requests", "4", "--output-len", "7", "--json")
    assert p.returncode == 0
    assert "reports no usage" in p.stderr
    lv = json.loads(p.stdout)["levels"][0]
    assert lv["total_output_tokens"] == 28


def test_refused_connection_exit_2_one_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    p = run_cli(f"http://127.0.0.1:{port}", "--num-requests", "3")
    assert p.returncode == 2
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect")
    assert "Traceback" not in p.stderr


def test_bad_option_exit_2():
    p = run_cli("http://127.0.0.1:9", "--concurrency", "1,x")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_record_writes_valid_schema_rows(zero_server, tmp_path):
    srv = zero_server("--token-delay-ms", "1")
    out = tmp_path / "runs.csv"
    common = ["--concurrency", "1,2", "--num-requests", "4", "--input-len", "16", "--output-len", "8",
              "--record", str(out), "--deploy-model", "deepseek-r1", "--weights", "fp8",
              "--engine", "vllm", "--accelerator", "h200-sxm", "--count", "8", "--nodes", "1",
              "--placement", "gpu", "--tp", "8", "--mtp", "0"]  # fmt: skip
    d = bench_json(srv.base_url, *common)
    d2 = bench_json(srv.base_url, *common)  # appends, header once
    assert d["recorded_rows"] == d2["recorded_rows"] == 10
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == list(COLUMNS)
    assert len(rows) == 20
    assert len({r["id"] for r in rows}) == 20 or len({r["id"] for r in rows}) == 10  # same second
    metrics = {r["metric"] for r in rows}
    assert metrics == {"decode_tok_s_per_user", "output_tok_s_total", "tpot_ms", "ttft_ms", "e2e_ms"}
    for r in rows:
        for col in ("model", "weights", "engine", "accelerator", "placement", "metric", "scope", "ambiguity"):
            assert r[col] in vocabulary()[col], (col, r[col])
        assert r["kv_dtype"] == "" and r["cpu"] == ""  # not given: empty, never guessed
        assert r["accelerators_per_node"] == "8" and r["tp"] == "8" and r["mtp"] == "0"
        assert r["input_len"] == "16" and r["output_len"] == "8"
        assert r["concurrency"] in ("1", "2")
        assert float(r["value"]) > 0
        assert r["scope"] == "core" and r["ambiguity"] == "none" and r["prefill_basis"] == ""
        assert r["source"].startswith(f"dsdeploy bench {srv.base_url} 20")
    lv = d["levels"][0]
    by = {r["metric"]: float(r["value"]) for r in rows[:5]}
    assert by["tpot_ms"] == pytest.approx(lv["tpot_ms"]["mean"], rel=1e-5)
    assert by["decode_tok_s_per_user"] == pytest.approx(1000 / lv["tpot_ms"]["mean"], rel=1e-5)
    assert by["output_tok_s_total"] == pytest.approx(lv["output_throughput"], rel=1e-5)


def test_record_rejects_unknown_ids(zero_server, tmp_path):
    p = run_cli("http://127.0.0.1:9", "--record", str(tmp_path / "x.csv"), "--deploy-model", "deepseek-r1",
                "--placement", "gpu", "--accelerator", "h100-sxn")  # fmt: skip
    assert p.returncode == 2 and "h100-sxm" in p.stderr and "Traceback" not in p.stderr


def test_plan_side_by_side_and_record_from_plan(zero_server, tmp_path):
    srv = zero_server("--token-delay-ms", "2")
    plan = {
        "model": "deepseek-r1", "weights": "gguf-q4_k_m", "kv_dtype": None, "engine": "llama.cpp",
        "placement": "cpu", "hardware": {"cpu": "epyc-9654", "cpu_sockets": 1},
        "performance": {"ttft_ms": 10.0, "tpot_ms": 2.0, "decode_tok_s_per_user": 500.0,
                        "output_tok_s_total": 500.0, "band": [0.7, 1.3]},
    }  # fmt: skip
    pf = tmp_path / "plan.json"
    pf.write_text(json.dumps(plan))
    out = tmp_path / "r.csv"
    d = bench_json(srv.base_url, "--plan", str(pf), "--num-requests", "4", "--output-len", "6",
                   "--input-len", "8", "--record", str(out))  # fmt: skip
    cmp_ = d["levels"][0]["plan_comparison"]
    assert cmp_["tpot_ms"]["predicted"] == 2.0
    assert cmp_["tpot_ms"]["measured"] == pytest.approx(d["levels"][0]["tpot_ms"]["mean"])
    rows = list(csv.DictReader(out.open()))
    assert {r["engine"] for r in rows} == {"llama.cpp"} and {r["placement"] for r in rows} == {"cpu"}
    assert {r["accelerators_per_node"] for r in rows} == {"0"} and {r["cpu"] for r in rows} == {"epyc-9654"}
    # the table view prints both columns
    p = run_cli(srv.base_url, "--plan", str(pf), "--num-requests", "2", "--output-len", "4", "--input-len", "4")
    assert p.returncode == 0 and "predicted" in p.stdout and "measured" in p.stdout


def test_ctrl_c_prints_partial_results(zero_server):
    srv = zero_server("--token-delay-ms", "50")
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsdeploy.cli.main", "bench", srv.base_url, "--concurrency", "2,4",
         "--num-requests", "1000", "--output-len", "4", "--input-len", "4", "--json", "--warmup", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # a shell may start jobs with SIGINT ignored; a user's terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the sweep is under way (probes are 2 requests)
        seen = httpx.get(srv.base_url + "/stats").json()["generation_requests"]
        if seen >= 6:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    d = json.loads(out)
    assert d["interrupted"] is True
    assert len(d["levels"]) == 1 and d["levels"][0]["interrupted"] is True
    lv = d["levels"][0]
    assert 0 < lv["completed"] < 1000 and lv["errors"] == 0
    assert lv["output_throughput"] == pytest.approx(lv["total_output_tokens"] / lv["duration_s"])
