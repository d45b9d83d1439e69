"""The report and the UI in headless Chromium (Debian's chromium driven by Playwright; install both
with scripts/setup_browser.sh): they load with no JavaScript error and no request leaving the
machine, the charts carry `plan --json`'s numbers, the UI redraws when the GPU count changes, bench
points appear, and the report prints to PDF within the page width."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time

import pytest
from report_helpers import BENCH_FILES, cli

pytestmark = pytest.mark.browser

FP8_H200 = ["--weights", "fp8", "--accelerator", "h200-sxm", "--concurrency", "64"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (bash scripts/setup_browser.sh)"
    )
    exe = shutil.which("chromium")
    if not exe:
        pytest.skip("chromium is not installed (bash scripts/setup_browser.sh runs apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe)
        yield b
        b.close()


@pytest.fixture
def allowed_console() -> list[str]:
    """Console error texts a test expects (e.g. the browser's log line for a 400 answer)."""
    return []


@pytest.fixture
def page(browser, allowed_console):
    """A fresh page; fails the test on any JS exception or unexpected console error."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    yield pg
    ctx.close()
    unexpected = [e for e in errors if not any(a in e for a in allowed_console)]
    assert not unexpected, unexpected


@pytest.fixture(scope="module")
def ui_url():
    import uvicorn

    from dsdeploy.reports.ui import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("the UI server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    t.join(timeout=5)


def _requests_outside(page, allowed_prefix: str) -> list[str]:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(allowed_prefix) else None)
    return outside


def _report(monkeypatch, capsys, tmp_path, *args: str):
    out = tmp_path / "report.html"
    code, _, err = cli(monkeypatch, capsys, "report", *args, "-o", str(out))
    assert code == 0, err
    return out


def _plan(monkeypatch, capsys, *args: str) -> dict:
    code, out, err = cli(monkeypatch, capsys, "plan", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_report_in_browser_carries_plan_json(page, monkeypatch, capsys, tmp_path):
    plan = _plan(monkeypatch, capsys, *FP8_H200)
    bench = [x for f in BENCH_FILES for x in ("--bench", str(f))]
    out = _report(
        monkeypatch, capsys, tmp_path, *FP8_H200, "--cost", "--requests-per-day", "1200", "--tpot-ms", "50", *bench
    )
    outside = _requests_outside(page, out.as_uri())
    page.goto(out.as_uri())
    assert page.get_by_test_id("verdict").get_attribute("data-fits") == "true"
    dev = plan["per_device"][0]
    seg = page.locator("#mem-chart rect.seg[data-part=weights]")
    assert int(seg.get_attribute("data-value")) == dev["weights_bytes"]
    assert seg.locator("title").text_content().endswith(f"{dev['weights_bytes'] / 1e9:,.1f} GB")
    pts = page.locator("#tpot-chart circle.pt[data-series=predicted]")
    assert pts.count() == len(plan["performance_sweep"])
    got = pts.evaluate_all(
        "els => els.map(e => [+e.dataset.concurrency, +e.dataset.tpotMs, +e.dataset.outputTokSTotal])"
    )
    assert got == [[p["concurrency"], p["tpot_ms"], p["output_tok_s_total"]] for p in plan["performance_sweep"]]
    # the knee is marked where Kneedle finds one (a curve still convex up to the KV capacity has none)
    from dsdeploy.planner.charts import knee_index

    sweep = plan["performance_sweep"]
    knee = knee_index([p["tpot_ms"] for p in sweep], [p["output_tok_s_total"] for p in sweep])
    assert page.locator("#tpot-chart circle.knee").count() == (0 if knee is None else 1)
    assert page.locator("#tpot-chart polygon.band").count() == 1
    # the measured points of both bench files are drawn and visible
    for i, f in enumerate(BENCH_FILES):
        levels = json.loads(f.read_text())["levels"]
        m = page.locator(f"#tpot-chart rect.pt[data-series=measured-{i}]")
        assert m.count() == len(levels)
        assert m.first.is_visible()
        assert m.evaluate_all("els => els.map(e => +e.dataset.outputTokSTotal)") == [
            lv["output_throughput"] for lv in levels
        ]
    assert page.locator("#demand-chart circle.pt").count() > 0
    assert outside == []


def test_default_report_loads_offline_and_prints(page, monkeypatch, capsys, tmp_path):
    out = _report(monkeypatch, capsys, tmp_path)
    outside = _requests_outside(page, out.as_uri())
    page.goto(out.as_uri())
    assert page.get_by_test_id("verdict").get_attribute("data-fits") == "false"
    assert page.locator("#no-perf").is_visible()
    page.emulate_media(media="print")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    pdf = page.pdf(format="A4")
    assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
    assert outside == []


def test_ui_redraws_when_gpu_count_changes(page, ui_url, monkeypatch, capsys):
    from playwright.sync_api import expect

    outside = _requests_outside(page, ui_url)
    page.goto(ui_url + "/?weights=fp8&accelerator=h200-sxm&concurrency=64")
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_have_attribute("data-fits", "true")
    seg = page.locator("#mem-chart rect.seg[data-part=weights]")
    plan8 = _plan(monkeypatch, capsys, *FP8_H200, "--count", "8")
    assert int(seg.get_attribute("data-value")) == plan8["per_device"][0]["weights_bytes"]
    page.fill("#count", "4")
    expect(verdict).to_have_attribute("data-fits", "false")
    plan4 = _plan(monkeypatch, capsys, *FP8_H200, "--count", "4")
    expect(seg).to_have_attribute("data-value", str(plan4["per_device"][0]["weights_bytes"]))
    assert plan4["per_device"][0]["weights_bytes"] > plan8["per_device"][0]["weights_bytes"]
    expect(page.locator("#verdict")).to_contain_text(plan4["reason"][1:40])
    expect(page.locator("#launch")).to_contain_text("No launch command")
    # 4× B200 (183,359 MiB = 192.3 GB each as the driver reports it): the FP8 weights fit, the KV
    # cache holds only some of the 64 requests, so the verdict turns from "does not fit" to "queues"
    page.select_option("#accelerator", "b200")
    expect(verdict).to_have_attribute("data-verdict", "queues")
    expect(verdict).to_contain_text("wait for a free slot")
    page.fill("#count", "8")
    expect(verdict).to_have_attribute("data-fits", "true")
    expect(page.locator("#launch")).to_contain_text("--tensor-parallel-size 8")
    expect(page.locator("#status")).to_have_text("fits")
    assert outside == []


def test_ui_shows_bad_input_without_breaking(page, ui_url, allowed_console):
    from playwright.sync_api import expect

    allowed_console.append("status of 400 (Bad Request)")  # /api/view answers bad options with 400

    page.goto(ui_url + "/")
    page.fill("#nodes", "0")
    expect(page.locator("#status")).to_have_class("error")
    expect(page.locator("#status")).to_contain_text("--nodes ≥ 1")
    page.fill("#nodes", "2")
    expect(page.locator("#status")).not_to_have_class("error")


def test_ui_cost_checkbox_adds_the_cost_section(page, ui_url):
    from playwright.sync_api import expect

    page.goto(ui_url + "/?weights=fp8&accelerator=h200-sxm")
    assert page.locator("#cost-section").count() == 0
    page.fill("#requests_per_day", "1200")
    page.check("#cost")
    expect(page.locator("#demand-chart")).to_be_visible()
    expect(page.locator("#bom-table")).to_contain_text("NVIDIA H200")
