"""`dsdeploy report`, `bench --report` and the UI's JSON endpoints, without a browser: the page is
built from `plan --json`'s dict for the same options, and every number the charts draw is that
dict's. Browser checks are in test_report_browser.py."""

from __future__ import annotations

import json

import markupsafe
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from report_helpers import BENCH_FILES, Elements, cli

from dsdeploy.planner.charts import cost_vs_demand, knee_index
from dsdeploy.reports.data import PlanInputs, build_plan

CASES = [
    PlanInputs(),  # the seed scenario: does not fit
    PlanInputs(weights="fp8", accelerator="h200-sxm", concurrency=64),
    PlanInputs(weights="awq-int4", accelerator="h100-sxm", count=8, input_len=2000, output_len=500, concurrency=16),
    PlanInputs(
        weights="gguf-q4_k_m", accelerator="rtx-4090", placement="experts-on-cpu", cpu="epyc-9654", dram="ddr5-4800x12"
    ),
    PlanInputs(model="deepseek-r1-distill-qwen-7b", weights="bf16", accelerator="rtx-4090", concurrency=4),
]


def _plan_json(monkeypatch, capsys, inp: PlanInputs) -> dict:
    code, out, err = cli(monkeypatch, capsys, "plan", *inp.plan_argv(), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("inp", CASES, ids=lambda i: " ".join(i.plan_argv()) or "default")
def test_build_plan_is_plan_json(monkeypatch, capsys, inp):
    """The report's data source is exactly `plan --json` for the same flags (plan_argv reproduces them)."""
    assert build_plan(inp).plan == _plan_json(monkeypatch, capsys, inp)


@pytest.mark.parametrize("inp", CASES, ids=lambda i: " ".join(i.plan_argv()) or "default")
def test_report_charts_carry_plan_json_numbers(monkeypatch, capsys, tmp_path, inp):
    plan = _plan_json(monkeypatch, capsys, inp)
    out = tmp_path / "r.html"
    code, stdout, err = cli(monkeypatch, capsys, "report", *inp.plan_argv(), "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}" in stdout
    page = Elements(out.read_text(encoding="utf-8"))
    # memory chart: each drawn segment is the plan's bytes; the table holds all five parts
    keys = {"weights": "weights_bytes", "kv": "kv_bytes", "activations": "activation_bytes"}
    keys |= {"overhead": "overhead_bytes", "free": "free_bytes"}
    for dev in plan["per_device"]:
        bar = [a for a in page.find("g", **{"class": "bar"}) if a.get("data-device") == dev["name"]]
        assert len(bar) == 1 and int(bar[0]["data-free"]) == dev["free_bytes"]
        cells = {
            a["data-part"]: int(a["data-bytes"]) for a in page.find("td") if "data-bytes" in a and "data-part" in a
        }
        if len(plan["per_device"]) == 1:
            assert cells == {k: dev[v] for k, v in keys.items()}
    drawn = [(a["data-part"], int(a["data-value"])) for a in page.find("rect", **{"class": "seg"}) if "data-part" in a]
    expected = [
        (k, dev[v]) for dev in plan["per_device"] for k, v in keys.items() if dev[v] > 0
    ]  # zero and negative parts draw nothing
    assert [d for d in drawn if d[0] in keys] == expected
    markers = {(a["data-marker"], int(a["data-value"])) for a in page.find("line", **{"class": "marker"})}
    assert {("usable", d["usable_bytes"]) for d in plan["per_device"]} <= markers
    # verdict
    verdict = page.find(id="verdict")[0]
    assert verdict["data-fits"] == ("true" if plan["fits"] else "false")
    assert verdict["data-verdict"] == plan["verdict"]  # fits / queues / does not fit
    # performance: one point per sweep entry, the plan's numbers to the last digit
    pts = page.find("circle", data_series="predicted")
    sweep = plan.get("performance_sweep", [])
    assert len(pts) == 2 * len(sweep)  # the TPOT chart and the TTFT chart
    for a, p in zip(pts[: len(sweep)], sweep, strict=True):
        assert int(a["data-concurrency"]) == p["concurrency"]
        assert float(a["data-tpot-ms"]) == p["tpot_ms"] and float(a["data-ttft-ms"]) == p["ttft_ms"]
        assert float(a["data-output-tok-s-total"]) == p["output_tok_s_total"]
    # alternatives, unconfirmed notes, labels
    assert [a["data-alternative"] for a in page.find("tr") if "data-alternative" in a] == [
        a["label"] for a in plan["alternatives"]
    ]
    text = out.read_text(encoding="utf-8")
    for u in plan["unconfirmed"]:
        assert "UNCONFIRMED: " + str(markupsafe.escape(u)) in text  # as Jinja's autoescape writes it
    assert len(page.find("span", **{"class": "label label-unconfirmed"})) >= (1 if plan["unconfirmed"] else 0)


def test_report_is_self_contained(monkeypatch, capsys, tmp_path):
    out = tmp_path / "r.html"
    args = [
        "--weights",
        "fp8",
        "--accelerator",
        "h200-sxm",
        "--concurrency",
        "64",
        "--cost",
        "--requests-per-day",
        "1200",
    ]
    code, _, err = cli(monkeypatch, capsys, "report", *args, "--bench", str(BENCH_FILES[0]), "-o", str(out))
    assert code == 0, err
    page = Elements(out.read_text(encoding="utf-8"))
    tags = {t for t, _ in page.items}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}
    for _, attrs in page.items:
        for k, v in attrs.items():
            if k in ("src", "href", "action", "srcset", "poster", "data"):
                raise AssertionError(f"external reference {k}={v}")
    assert "url(http" not in out.read_text(encoding="utf-8")
    # every chart has a title (its text alternative's name) and a table behind it
    charts = page.find("svg", **{"class": "chart"})
    assert len(charts) == 6  # memory, TPOT, TTFT, alternatives, cost breakdown, cost vs demand
    for c in charts:
        assert c["role"] == "img" and c["aria-labelledby"] == c["id"] + "-title"
    for table in ("mem-table", "perf-table", "alt-table", "bom-table", "demand-table"):
        assert page.find("table", id=table)


def test_report_overlays_several_bench_runs(monkeypatch, capsys, tmp_path):
    out = tmp_path / "r.html"
    args = ["--weights", "fp8", "--accelerator", "h200-sxm", "--tpot-ms", "50", "--ttft-ms", "2000"]
    bench = [x for f in BENCH_FILES for x in ("--bench", str(f))]
    code, _, err = cli(monkeypatch, capsys, "report", *args, *bench, "-o", str(out))
    assert code == 0, err
    page = Elements(out.read_text(encoding="utf-8"))
    for i, f in enumerate(BENCH_FILES):
        levels = json.loads(f.read_text())["levels"]
        pts = page.find("rect", data_series=f"measured-{i}")
        assert len(pts) == 2 * len(levels)
        for a, lv in zip(pts[: len(levels)], levels, strict=True):
            assert a["data-run"] == f.name and int(a["data-concurrency"]) == lv["concurrency"]
            assert float(a["data-output-tok-s-total"]) == lv["output_throughput"]
            assert float(a["data-tpot-ms"]) == lv["tpot_ms"]["mean"]
    slo = {(a["data-line"], float(a["data-value"])) for a in page.find("line", **{"class": "vline"})}
    assert slo == {("slo-tpot_ms", 50.0), ("slo-ttft_ms", 2000.0)}


def test_report_cost_matches_cost_json(monkeypatch, capsys, tmp_path):
    args = ["--weights", "fp8", "--accelerator", "h200-sxm", "--concurrency", "64"]
    args += ["--requests-per-day", "1200"]  # `cost` prices a demand; the report's --cost takes the same one
    code, out_json, err = cli(monkeypatch, capsys, "cost", *args, "--json")
    assert code == 0, err
    cost = json.loads(out_json)
    out = tmp_path / "r.html"
    code, _, err = cli(monkeypatch, capsys, "report", *args, "--cost", "-o", str(out))
    assert code == 0, err
    page = Elements(out.read_text(encoding="utf-8"))
    bar = page.find("g", **{"class": "bar"}, data_label="own hardware, per year")
    assert float(bar[0]["data-total"]) == cost["annual"]["total"]
    own = {float(a["data-utilization"]): float(a["data-annual-cost"]) for a in page.find("circle", data_series="own")}
    assert cost["utilization"] < 0.02  # 1,200 requests a day keep 8× H200 busy well under 2 % of the time
    assert sorted(own)[:3] == [0.02, 0.05, 0.1] and all(v > 0 for v in own.values())  # the own-hardware line
    api = page.find("circle", data_series="api")
    for a in api:  # the API line: demand × 365 × price per million output tokens (prompts included)
        d = float(a["data-tokens-per-day"])
        assert float(a["data-annual-cost"]) == pytest.approx(d * 365 * cost["api_cost_per_mtok_output"] / 1e6)
    cap = page.find("line", **{"class": "vline"}, data_line="capacity")
    assert float(cap[0]["data-value"]) == cost["capacity_output_tokens_per_day"]


def test_bad_input_is_one_message(monkeypatch, capsys, tmp_path):
    code, _, err = cli(monkeypatch, capsys, "report", "--accelerator", "h1000", "-o", str(tmp_path / "x.html"))
    assert code == 2 and err.startswith("error: unknown accelerator 'h1000'") and "Traceback" not in err
    code, _, err = cli(monkeypatch, capsys, "report", "--bench", str(tmp_path / "nope.json"))
    assert code == 2 and "bench file not found" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"levels": 3}')
    code, _, err = cli(monkeypatch, capsys, "report", "--bench", str(bad))
    assert code == 2 and "not a `dsdeploy bench --json` result" in err
    assert not (tmp_path / "x.html").exists()


def test_knee_is_kneedle_by_hand():
    # x scaled: 0, .25, .5, .75, 1; y scaled: 0, .8, .9, .95, 1; y - x: 0, .55, .4, .2, 0 → index 1
    assert knee_index([1, 2, 3, 4, 5], [0, 8, 9, 9.5, 10]) == 1
    assert knee_index([1, 2, 3], [1, 2, 3]) is None  # a straight line has no knee
    assert knee_index([1, 2], [1, 5]) is None  # too few points
    assert knee_index([1, 1, 1], [1, 2, 3]) is None  # no x range


def test_cost_vs_demand_by_hand():
    def rep(u, total):
        return {
            "utilization": u,
            "annual": {"total": total},
            "capacity_output_tokens_per_day": 1e6,
            "api_cost_per_mtok_output": 2.0,
            "rent_annual": 5000.0,
        }

    pts = cost_vs_demand([rep(0.5, 1000.0), rep(1.0, 1100.0)], [1e6])
    assert {"series": "own", "tokens_per_day": 5e5, "annual_cost": 1000.0, "utilization": 0.5} in pts
    assert {"series": "own", "tokens_per_day": 1e6, "annual_cost": 1100.0, "utilization": 1.0} in pts
    # 10⁶ tokens/day × 365 days × 2.0 per 10⁶ tokens = 730 a year
    assert {"series": "api", "tokens_per_day": 1e6, "annual_cost": 730.0} in pts
    assert {"series": "rent", "tokens_per_day": 1e6, "annual_cost": 5000.0} in pts


def test_ui_api_plan_is_plan_json(monkeypatch, capsys):
    from fastapi.testclient import TestClient

    from dsdeploy.reports.ui import create_app

    client = TestClient(create_app())
    inp = CASES[1]
    q = {"weights": "fp8", "accelerator": "h200-sxm", "concurrency": "64"}
    r = client.get("/api/plan", params=q)
    assert r.status_code == 200 and r.json() == _plan_json(monkeypatch, capsys, inp)
    v = client.get("/api/view", params={**q, "count": "4"})
    assert v.status_code == 200 and v.json()["plan"]["fits"] is False
    assert 'data-fits="false"' in v.json()["html"]
    bad = client.get("/api/view", params={"accelerator": "h1000"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("unknown accelerator 'h1000'")
    assert client.get("/api/plan", params={"bogus": "1"}).json() == {"error": "unknown option(s): bogus"}
    assert client.get("/api/plan", params={"count": "x"}).json() == {"error": "count must be a number, got 'x'"}
    # the UI takes catalog ids, never paths on the server
    assert client.get("/api/plan", params={"model": "/etc/hostname"}).json()["error"].startswith("unknown model")
    assert client.get("/api/plan", params={"config": "/etc/hostname"}).json() == {"error": "unknown option(s): config"}
    page = client.get("/", params={"count": "4", "accelerator": "h200-sxm"})
    assert page.status_code == 200 and 'id="count" name="count" type="number" min="1" max="64" value="4"' in page.text


@pytest.mark.engine
def test_bench_report_against_tiny_model(monkeypatch, capsys, tmp_path, tiny_server):
    """`dsdeploy bench --report`: a real run against the tiny model; its measured points are in the page,
    over the prediction of the plan file given with --plan (shown as is)."""
    code, plan_out, err = cli(monkeypatch, capsys, "plan", "--weights", "fp8", "--accelerator", "h200-sxm", "--json")
    assert code == 0, err
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan_out)
    out = tmp_path / "bench.html"
    args = ["bench", tiny_server.base_url, "--api-key", tiny_server.api_key, "--concurrency", "1,2"]
    args += ["--num-requests", "4", "--input-len", "16", "--output-len", "8", "--json", "--plan", str(plan_file)]
    code, stdout, err = cli(monkeypatch, capsys, *args, "--report", str(out), "--slo-tpot-ms", "500")
    assert code == 0, err
    doc = json.loads(stdout)
    page = Elements(out.read_text(encoding="utf-8"))
    pts = page.find("rect", data_series="measured-0")
    assert [int(a["data-concurrency"]) for a in pts] == [1, 2, 1, 2]  # TPOT chart, TTFT chart
    for a, lv in zip(pts, doc["levels"], strict=False):
        assert float(a["data-output-tok-s-total"]) == lv["output_throughput"]
    plan = json.loads(plan_out)
    assert len(page.find("circle", data_series="predicted")) == 2 * len(plan["performance_sweep"])
    assert page.find("line", data_line="slo-tpot_ms", data_value="500.0")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 1e5), st.floats(0.1, 1e5)), min_size=0, max_size=12))
def test_knee_is_a_point_furthest_above_the_diagonal(pts):
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    k = knee_index(xs, ys)
    if k is None:
        return
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def d(i):
        return (ys[i] - y0) / (y1 - y0) - (xs[i] - x0) / (x1 - x0)

    assert d(k) > 0 and all(d(k) >= d(i) for i in range(len(xs)))


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e12, 1e12), st.floats(1e-3, 1e12))
def test_axis_ticks_cover_the_data(lo, span):
    from dsdeploy.reports.svg import Axis, nice_ticks

    assume(span > abs(lo) * 1e-6)  # a chart's range is never a millionth of its values
    ticks = nice_ticks(lo, lo + span)
    tol = span * 1e-6
    assert ticks[0] <= lo + tol and ticks[-1] >= lo + span - tol and len(ticks) <= 12
    if lo > 0:
        ax = Axis.fit([lo, lo + span], log=True)
        assert ax.lo <= lo and ax.hi >= lo + span


def test_ui_command_serves_on_loopback(tmp_path):
    """`dsdeploy ui --port 0` (a child process): prints its URL on 127.0.0.1 and answers /api/plan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "dsdeploy.cli.main", "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("dsdeploy ui on http://127.0.0.1:"), line
        url = line.split()[3]
        for _ in range(100):
            try:
                r = httpx.get(url + "api/plan", params={"weights": "fp8", "accelerator": "h200-sxm"}, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["fits"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    "level",
    [
        {"completed": 1, "ttft_ms": 5},
        {"completed": 1, "concurrency": "a", "output_throughput": "x"},
        {"completed": 1, "concurrency": 1, "output_throughput": 1e400},
    ],
)
def test_bad_bench_file_is_one_message(monkeypatch, capsys, tmp_path, level):
    """Review finding: these crashed `report` with AttributeError / TypeError / OverflowError."""
    bench = tmp_path / "bad.json"
    bench.write_text(json.dumps({"levels": [level]}))
    code, _, err = cli(monkeypatch, capsys, "report", "--bench", str(bench), "-o", str(tmp_path / "r.html"))
    assert code == 2 and "bad.json: level 0" in err and "Traceback" not in err
