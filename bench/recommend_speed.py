"""Measure `dsdeploy recommend` over the full catalog (target: < 2 s).

Reports (1) the recommend computation in-process, after imports and catalog load — best and median of
N runs — and (2) the whole CLI process wall time (Python start-up and imports included).

    .venv/bin/python bench/recommend_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ARGS = [
    "--requests-per-day",
    "2000",
    "--input-len",
    "1500",
    "--output-len",
    "1000",
    "--peak-concurrency",
    "20",
    "--ttft-ms",
    "2000",
    "--tpot-ms",
    "50",
    "--on-prem",
    "--currency",
    "CNY",
    "--region",
    "cn-avg",
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--limit", type=float, default=2.0)
    a = ap.parse_args()
    from dsdeploy.catalog import load_catalog
    from dsdeploy.catalog.prices import PriceBook, load_prices
    from dsdeploy.planner.bom import CostOptions
    from dsdeploy.planner.recommend import Demand, recommend
    from dsdeploy.specs.model import load_model_spec

    t = time.perf_counter()
    cat = load_catalog()
    spec = load_model_spec("deepseek-r1")
    book = PriceBook.build(load_prices(), "CNY")
    setup = time.perf_counter() - t
    d = Demand.build(
        requests_per_day=2000,
        input_len=1500,
        output_len=1000,
        peak_concurrency=20,
        ttft_ms=2000,
        tpot_ms=50,
        on_prem=True,
    )
    times, n = [], 0
    for _ in range(a.runs):
        t = time.perf_counter()
        res = recommend(cat, "deepseek-r1", spec, d, book, CostOptions(region="cn-avg"))
        times.append(time.perf_counter() - t)
        n = res["considered"]
    exe = Path(sys.executable).with_name("dsdeploy")
    walls = []
    for _ in range(max(1, a.runs // 2)):
        t = time.perf_counter()
        subprocess.run([str(exe), "recommend", *ARGS, "--json"], check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    print(f"accelerators in catalog: {len(cat.accelerators)}, formats: {len(cat.formats)}; options considered: {n}")
    print(f"catalog + price load: {setup:.3f} s")
    print(
        f"recommend (in-process): best {min(times):.3f} s, median {statistics.median(times):.3f} s over {a.runs} runs"
    )
    print(
        f"dsdeploy recommend (CLI process, incl. Python start-up and imports): best {min(walls):.3f} s, "
        f"median {statistics.median(walls):.3f} s"
    )
    ok = statistics.median(times) < a.limit
    print("PASS" if ok else "FAIL", f"(limit {a.limit:g} s on the in-process median)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
