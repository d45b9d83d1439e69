#!/usr/bin/env python3
"""Score the performance model on the measurement files and write docs/accuracy-data.md.

    nice .venv/bin/python bench/accuracy.py            # score the shipped calibration
    nice .venv/bin/python bench/accuracy.py --refit    # refit catalog/data/calibration.toml first

Rows: `data/reference/measurements/public.csv` and `inferencex-subset.csv` (the repo's copies),
scope `core`, ambiguity `none`/`minor`. The shipped calibration is fitted on both files together
with `extra.csv` (published measurements found for issue 12, EXTRA.md), which is fitted on but not
scored against a target
(`--refit`). Reports, each with coverage, median/p90 APE and share within ±30 %:
- roofline with the physics priors only (nothing fitted);
- in-sample: the shipped calibration on each file (target ≤ 12 % median APE);
- leave-one-source-out on public.csv: for each source, fit on every other row of both files,
  predict that source's rows (target ≤ 25 %);
- leave-one-accelerator-out on inferencex-subset.csv: for each accelerator, fit on every row of
  both files that is not on it (target ≤ 25 %);
- the p80 band: share of held-out rows whose error lies inside the row's stated band (target
  70–90 %);
- the `large` rows (wide-EP, PD-disaggregated), scored separately with the shipped calibration.
"""

from __future__ import annotations

import argparse
import math
import time
import tomllib
from pathlib import Path

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.calibration import SHIPPED, calibration_to_toml, parse_calibration
from dsdeploy.estimators.calibration import Calibration
from dsdeploy.validate.fit import (
    FIT_FILES,
    _physics_groups,
    at_bound,
    calibrate,
    core_rows,
    fit_set,
    leave_one_accelerator_out,
    leave_one_source_out,
    p80_abs,
)
from dsdeploy.validate.scenarios import RowResult, evaluate_rows, filter_rows, read_scenarios, summarize

ROOT = Path(__file__).resolve().parent.parent
MEAS = ROOT / "data" / "reference" / "measurements"
# the fit set (validate/fit.py FIT_FILES): the two files, scored against its targets
# (data/reference/measurements/public.csv, data/reference/measurements/inferencex-subset.csv), and
# the published measurements we found ourselves (data/reference/measurements/EXTRA.md): fitted on,
# never scored against a target (they are not the yardstick), reported in-sample for information.
FILES = FIT_FILES[:2]
EXTRA = FIT_FILES[2]


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def line(name: str, s: dict, extra: str = "") -> str:
    return (
        f"| {name} | {s['rows']} | {pct(s['coverage'])} | {pct(s['median_ape'])} | {pct(s['p90_ape'])} "
        f"| {pct(s['within_30pct'])} |{extra}"
    )


def band_coverage(results: list[RowResult]) -> float | None:
    """Share of predicted rows whose |log error| lies inside log(1 + band)."""
    ok = [r for r in results if r.predicted is not None and r.band is not None]
    if not ok:
        return None
    inside = sum(abs(math.log(r.predicted / r.measured)) <= math.log(1 + r.band) for r in ok)
    return inside / len(ok)


def p80_log_error(results: list[RowResult]) -> float | None:
    return p80_abs([math.log(r.predicted / r.measured) for r in results if r.predicted and r.measured])


def inflation_line(results: dict) -> str:
    """The measured ratio behind validate/fit.py HELD_OUT_INFLATION: p80 |log error| held out ÷ in-sample."""
    held = [r for k, v in results.items() if k.startswith(("LOSO", "LOAO")) for r in v]
    ins = [r for k, v in results.items() if k.startswith("in-sample") and "extra" not in k for r in v]
    h, i = p80_log_error(held), p80_log_error(ins)
    if not h or not i:
        return ""
    return (
        f"p80 |log error|: held out {h:.3f}, in-sample {i:.3f}, ratio {h / i:.2f} (validate/fit.py HELD_OUT_INFLATION)"
    )


def score(cat, core: dict, all_rows: dict, fit_rows: list, cal: Calibration, cv: bool) -> tuple[dict, dict]:
    """Every scored set: physics priors, in-sample, leave-one-out (fit on the fit set's other rows),
    and the `large` rows; plus the leave-one-out wall times."""
    phys = Calibration(groups=tuple(_physics_groups()))
    results: dict[str, list[RowResult]] = {}
    for f in FILES:
        results[f"physics {f}"] = evaluate_rows(cat, core[f], phys)
        results[f"in-sample {f}"] = evaluate_rows(cat, core[f], cal)
    results[f"in-sample {EXTRA} (fitted, no target)"] = evaluate_rows(cat, core[EXTRA], cal)
    timing: dict[str, float] = {}
    if cv:
        t0 = time.time()
        results["LOSO public.csv"], _ = leave_one_source_out(cat, core[FILES[0]], fit_rows)
        timing["LOSO"] = time.time() - t0
        t0 = time.time()
        results["LOAO inferencex-subset.csv"], _ = leave_one_accelerator_out(cat, core[FILES[1]], fit_rows)
        timing["LOAO"] = time.time() - t0
    for f in FILES:
        large = filter_rows(all_rows[f], "large", None)
        if large:
            results[f"large rows {f} (shipped)"] = evaluate_rows(cat, large, cal)
    return results, timing


def summary_lines(results: dict, timing: dict) -> list[str]:
    out = [
        "# Accuracy of the performance model: data",
        "",
        "Written by `bench/accuracy.py` (see [accuracy.md](accuracy.md) for what it means). Rows of "
        "`data/reference/measurements/public.csv` and `data/reference/measurements/inferencex-subset.csv`: "
        "scope `core`, ambiguity `none`/`minor`; `large` rows separately. APE = |predicted − measured| ÷ measured.",
        "",
        "| set | rows | coverage | median APE | p90 APE | within ±30 % | p80 band covers |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        out.append(line(name, summarize(res), f" {pct(band_coverage(res))} |"))
    out += ["", "Leave-one-out wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items()), ""]
    if timing:
        out += [inflation_line(results), ""]
    out += [
        "## By metric",
        "",
        "| set | metric | rows | coverage | median APE | p90 APE | within ±30 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for m, v in summarize(res)["by_metric"].items():
            out.append(f"| {name} " + line(m, v))
    return out


def group_lines(cal: Calibration) -> list[str]:
    out = [
        "",
        "## Fitted groups (shipped)",
        "",
        "| engine | hw class | epoch | rows | bw eff | MoE bw eff | compute eff | m½ | µs/step | µs/kernel "
        "| ms/request | band (p80) | at a bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in cal.groups:
        out.append(
            f"| {g.engine} | {g.hw_class} | {g.epoch or '—'} | {g.rows} | {g.bw_eff:.3f} | {g.moe_bw_eff:.3f} | "
            f"{g.compute_eff:.3f} | {g.m_half:.0f} | {g.step_overhead_us:.0f} | {g.kernel_us:.1f} | "
            f"{g.request_ms:.1f} | ±{100 * g.band:.0f} % | {', '.join(at_bound(g)) or '—'} |"
        )
    return out


def miss_lines(results: dict) -> list[str]:
    out: list[str] = []
    for name in [k for k in results if k.startswith(("LOSO", "LOAO", "large"))]:
        out += ["", f"## Largest misses: {name}", ""]
        for r in sorted((r for r in results[name] if r.ape is not None), key=lambda r: -r.ape)[:10]:
            out.append(
                f"- **{r.id}** ({r.group}, {r.metric}): measured {r.measured:,.4g}, "
                f"predicted {r.predicted:,.4g} ({pct(r.ape)})."
            )
        reasons: dict[str, int] = {}
        for r in results[name]:
            if r.predicted is None:
                reasons[r.reason[:80]] = reasons.get(r.reason[:80], 0) + 1
        if reasons:
            out += [
                "",
                "Not predicted: " + "; ".join(f"{n} × {k}" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1])),
            ]
    return out


def row_lines(results: dict) -> list[str]:
    out = [
        "",
        "## Every core row",
        "",
        "| id | metric | group | measured | in-sample | held out |",
        "|---|---|---|---|---|---|",
    ]
    held = {r.id: r for k in results if k.startswith(("LOSO", "LOAO")) for r in results[k]}

    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:,.4g}"

    for fn in FILES:
        for r in results[f"in-sample {fn}"]:
            h = held.get(r.id)
            ho = f"{f(h.predicted)} ({pct(h.ape)})" if h else "—"
            out.append(
                f"| {r.id} | {r.metric} | {r.group} | {f(r.measured)} | {f(r.predicted)} ({pct(r.ape)}) | {ho} |"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--refit", action="store_true", help="refit and overwrite the shipped calibration first")
    ap.add_argument("--no-cv", action="store_true", help="skip the leave-one-out runs (quick look)")
    args = ap.parse_args()
    cat = load_catalog()
    all_rows = {f: read_scenarios(MEAS / f) for f in FILES}
    core = {f: core_rows(MEAS / f) for f in FIT_FILES}
    fit_rows = fit_set(MEAS)
    shipped = Path(str(SHIPPED))
    if args.refit:
        t0 = time.time()
        fitted = calibrate(
            cat,
            fit_rows,
            fitted_on=" + ".join(f"data/reference/measurements/{f}" for f in FIT_FILES),
        )
        shipped.write_text(calibration_to_toml(fitted))
        print(f"refit {len(fitted.groups)} groups in {time.time() - t0:.0f} s → {shipped}")
    cal = parse_calibration(tomllib.loads(shipped.read_text()), "shipped")
    results, timing = score(cat, core, all_rows, fit_rows, cal, not args.no_cv)
    out = summary_lines(results, timing) + group_lines(cal) + miss_lines(results) + row_lines(results)
    (ROOT / "docs" / "accuracy-data.md").write_text("\n".join(out) + "\n")
    print("\n".join(out[:16]))


if __name__ == "__main__":
    main()
