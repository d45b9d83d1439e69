#!/usr/bin/env python3
"""Size and open time of `dsdeploy report` pages in headless Chromium (targets: the default plan's
report < 0.5 MB and open in < 1 s). Results go in docs/report.md.

    .venv/bin/python bench/report_speed.py [--runs 7]

For each page: bytes on disk; time to build it (`dsdeploy report` in-process, median); and the
open time in a fresh browser context, from navigation start to the end of the load event
(Navigation Timing `loadEventEnd`), and to `goto()` returning, median and max over the runs.
Needs chromium and playwright (scripts/setup_browser.sh).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
PAGES = {
    "default plan (R1 FP16 on 8x H100: does not fit)": [],
    "R1 FP8 on 8x H200, c=64, --cost, 2 bench files, SLOs": [
        "--weights", "fp8", "--accelerator", "h200-sxm", "--concurrency", "64", "--cost", "--requests-per-day", "1200",
        "--ttft-ms", "2000", "--tpot-ms", "50",
        "--bench", str(FIX / "bench_tiny_c124.json"), "--bench", str(FIX / "bench_tiny_c1248.json"),
    ],
}  # fmt: skip


def build(args: list[str], out: Path) -> float:
    from dsdeploy.cli.main import app

    t = time.perf_counter()
    app(["report", *args, "-o", str(out)], standalone_mode=False)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    a = ap.parse_args()
    exe = shutil.which("chromium")
    if not exe:
        print("chromium is not installed: run bash scripts/setup_browser.sh", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe)
        for name, args in PAGES.items():
            out = Path(tmp) / "r.html"
            builds = [build(args, out) for _ in range(3)]
            load_ms, goto_ms = [], []
            for _ in range(a.runs):
                ctx = browser.new_context(viewport={"width": 1200, "height": 900})
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(out.as_uri(), wait_until="load")
                goto_ms.append((time.perf_counter() - t) * 1e3)
                nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
                load_ms.append(json.loads(nav)["loadEventEnd"])
                ctx.close()
            results.append(
                {
                    "page": name,
                    "bytes": out.stat().st_size,
                    "build_s_median": round(statistics.median(builds), 3),
                    "first_goto_ms": round(goto_ms[0], 1),  # the first page this browser opens: cold
                    "load_event_end_ms_median": round(statistics.median(load_ms), 1),
                    "load_event_end_ms_max": round(max(load_ms), 1),
                    "goto_ms_median": round(statistics.median(goto_ms), 1),
                    "goto_ms_max": round(max(goto_ms), 1),
                    "runs": a.runs,
                }
            )
        version = browser.version
        browser.close()
    if a.json:
        print(json.dumps({"chromium": version, "machine": platform.machine(), "results": results}, indent=2))
        return 0
    print(f"Chromium {version}, {platform.machine()}, {a.runs} runs each (fresh context per run)\n")
    print("| page | size | build (median) | loadEventEnd median / max | goto() median / max | goto() first |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['page']} | {r['bytes'] / 1e3:,.1f} kB | {r['build_s_median'] * 1e3:,.0f} ms | "
            f"{r['load_event_end_ms_median']:,.1f} / {r['load_event_end_ms_max']:,.1f} ms | "
            f"{r['goto_ms_median']:,.1f} / {r['goto_ms_max']:,.1f} ms | {r['first_goto_ms']:,.1f} ms |"
        )
    ok = results[0]["bytes"] < 500_000 and results[0]["goto_ms_max"] < 1000
    print(f"\ndefault plan's report: < 0.5 MB and opens in < 1 s: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
