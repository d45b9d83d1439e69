#!/usr/bin/env python3
"""Time the planner: the default `dsdeploy plan` (in-process and as a subprocess) and a full
minimum-count search over every catalog accelerator. Target: under 1 s each.

    .venv/bin/python bench/plan_speed.py [--repeat N]

In-process timings exclude interpreter start-up and imports (measured once, separately); the
subprocess timing is what a user waits for, start to exit.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

TARGET_S = 1.0


def _median_time(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from dsdeploy.catalog import load_catalog
    from dsdeploy.cli.main import app  # noqa: F401  (imports every subcommand, as the CLI does)
    from dsdeploy.estimators.memory import Workload
    from dsdeploy.planner import plan as P
    from dsdeploy.planner import result as R
    from dsdeploy.specs.deployment import resolve_deployment
    from dsdeploy.specs.model import load_model_spec

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cat = load_catalog()
    catalog_s = time.perf_counter() - t0

    def default_plan():
        spec = load_model_spec("deepseek-r1")
        wl = Workload(1024, 1024, 1)
        dep = resolve_deployment(cat, "deepseek-r1", spec, "fp16", "bf16", "h100-sxm", 8)
        ev = P.evaluate(dep, wl)
        return R.plan_result(cat, ev, wl, P.alternatives(cat, dep, wl))

    def default_plan_cli():
        from dsdeploy.cli.main import main as cli_main

        argv = sys.argv
        sys.argv = ["dsdeploy", "plan"]
        try:
            with redirect_stdout(io.StringIO()):
                cli_main()
        except SystemExit:
            pass
        finally:
            sys.argv = argv

    def min_count_search():
        spec = load_model_spec("deepseek-r1")
        return R.min_count_result(cat, "deepseek-r1", spec, "fp16", "bf16", Workload(1024, 1024, 1))

    n_acc = len([a for a in cat.accelerators.values() if not a.unified_memory])
    rows = []
    med, best = _median_time(default_plan, args.repeat)
    rows.append(("default plan, in-process (planner + alternatives + JSON dict)", med, best))
    med, best = _median_time(default_plan_cli, args.repeat)
    rows.append(("default `dsdeploy plan`, in-process through the CLI (Rich output)", med, best))
    med, best = _median_time(min_count_search, args.repeat)
    rows.append((f"--min-count search over {n_acc} accelerators, in-process", med, best))

    exe = shutil.which("dsdeploy", path=str(Path(sys.executable).parent)) or None
    cmd = [exe] if exe else [sys.executable, "-m", "dsdeploy.cli.main"]

    def run(*extra):
        r = subprocess.run([*cmd, *extra], capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd + list(extra))} failed: {r.stderr}")
        return r

    run("plan")  # warm the page cache and .pyc files
    med, best = _median_time(lambda: run("plan"), args.repeat)
    rows.append(("default `dsdeploy plan`, subprocess (start to exit)", med, best))
    med, best = _median_time(lambda: run("plan", "--json"), args.repeat)
    rows.append(("default `dsdeploy plan --json`, subprocess", med, best))
    med, best = _median_time(lambda: run("plan", "--min-count"), args.repeat)
    rows.append(("`dsdeploy plan --min-count`, subprocess", med, best))

    perf = "with" if R.performance_module() is not None else "without"
    print(f"Python {sys.version.split()[0]}, {perf} the performance estimator; median of {args.repeat} (best)")
    print(f"imports (CLI + planner): {import_s * 1000:.0f} ms; catalog load + validation: {catalog_s * 1000:.0f} ms")
    width = max(len(r[0]) for r in rows)
    ok = True
    for name, med, best in rows:
        flag = "ok" if med < TARGET_S else "SLOW"
        ok &= med < TARGET_S
        print(f"{name:<{width}}  {med * 1000:8.1f} ms  ({best * 1000:.1f})  {flag}")
    print(json.dumps({name: round(med, 4) for name, med, _ in rows}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
