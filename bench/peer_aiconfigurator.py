#!/usr/bin/env python3
"""dsdeploy against the best peer, NVIDIA aiconfigurator, on the same measured rows (issue 12).

    bash scripts/setup_aiconfigurator.sh          # once: makes .venv-aic (aiconfigurator 0.12.0)
    PYTHONPATH=src nice -n 10 .venv/bin/python bench/peer_aiconfigurator.py [--reuse]

For every `core` row (ambiguity none/minor) of data/reference/measurements/inferencex-subset.csv and
data/reference/measurements/public.csv that aiconfigurator covers (an NVIDIA GPU it ships per-op data for, TRT-LLM / SGLang /
vLLM, a DeepSeek model it can read, the row's parallelism, ISL/OSL and concurrency), it runs
aiconfigurator's own estimator (`cli_estimate`, the API behind `aiconfigurator cli estimate`) from
`.venv-aic` in one child process (bench/peer_aiconfigurator_worker.py), and scores both tools:

- aiconfigurator: its prediction for the row's metric, with its default (latest) engine version and
  its default SILICON database (HYBRID where SILICON has no data for the config);
- dsdeploy: the HELD-OUT prediction -- leave-one-accelerator-out on the InferenceX subset and
  leave-one-source-out on data/reference/measurements/public.csv, each fitted on the core rows of both files minus the held-out
  accelerator / source, plus data/reference/measurements/extra.csv (`dsdeploy.validate.fit.leave_one_accelerator_out` / `leave_one_source_out`
  with `fit_rows=` where they take it, else the same refit done here with `calibrate`).

Writes docs/peer-aiconfigurator.json (every row, both predictions, aiconfigurator's errors) and
docs/peer-comparison.md. `--reuse` keeps aiconfigurator's results from the JSON and recomputes only
dsdeploy's (aiconfigurator's numbers do not change when dsdeploy's model does).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dsdeploy.catalog import Catalog, load_catalog
from dsdeploy.validate import fit
from dsdeploy.validate.scenarios import Row, RowResult, evaluate_rows

ROOT = Path(__file__).resolve().parent.parent
REF = "data/reference/measurements"
IX_CSV = "data/reference/measurements/inferencex-subset.csv"
PUB_CSV = "data/reference/measurements/public.csv"
FILES = {IX_CSV: "leave-one-accelerator-out", PUB_CSV: "leave-one-source-out"}
AIC_PY = ROOT / ".venv-aic" / "bin" / "python"
WORKER = ROOT / "bench" / "peer_aiconfigurator_worker.py"
OUT_JSON = ROOT / "docs" / "peer-aiconfigurator.json"
OUT_MD = ROOT / "docs" / "peer-comparison.md"
MODEL_DIRS = ROOT / ".cache" / "aic-models"  # the distills' config.json for aiconfigurator (gitignored)

# dsdeploy accelerator id -> aiconfigurator system name (aiconfigurator_core/systems/*.yaml).
SYSTEMS = {
    "h100-sxm": "h100_sxm",
    "h200-sxm": "h200_sxm",
    "b200": "b200_sxm",
    "b300": "b300_sxm",
    "gb200": "gb200",
    "gb300": "gb300",
    "a100-sxm-80g": "a100_sxm",
    "l40s": "l40s",
}
BACKENDS = {"trtllm": "trtllm", "sglang": "sglang", "vllm": "vllm"}
HF_MODELS = {"deepseek-r1": "deepseek-ai/DeepSeek-R1", "deepseek-v3": "deepseek-ai/DeepSeek-V3"}
# Weight formats aiconfigurator can model, as its quant modes. NVIDIA's NVFP4 DeepSeek checkpoints
# keep attention in FP8 and quantize the MoE layers (data/reference/measurements/SCHEMA.md weights table).
QUANT = {
    "fp8": {},  # the checkpoint's own FP8 block quantization, inferred by aiconfigurator
    "bf16": {},  # the distills' native BF16, inferred from config.json
    "nvfp4": {"gemm_quant_mode": "fp8_block", "moe_quant_mode": "nvfp4"},
}
# MTP: aiconfigurator has no built-in acceptance ("nextn=1 requires 'nextn_accepted'"); both tools get
# dsdeploy's figure, 0.85 accepted draft tokens per step (DeepSeek-V3 technical report §5.4.3).
MTP_ACCEPTED = 0.85
# Row metric -> aiconfigurator result field.
METRIC_FIELD = {
    "ttft_ms": "ttft_ms",
    "tpot_ms": "tpot_ms",
    "output_tok_s_per_gpu": "tok_s_gpu",
    "output_tok_s_total": "tok_s",
    "decode_tok_s_per_user": "tok_s_user",
    "e2e_ms": "request_latency_ms",
}


def _int(row: Row, col: str) -> int | None:
    v = row.get(col)
    try:
        return int(float(v)) if v else None
    except ValueError:
        return None


def aic_job(cat: Catalog, row: Row, model_dirs: dict[str, str]) -> tuple[dict | None, str]:
    """aiconfigurator's cli_estimate arguments for a row, or (None, why it is not covered)."""
    if row.get("placement") != "gpu":
        return None, f"placement {row.get('placement')} (aiconfigurator models GPU-resident serving only)"
    system = SYSTEMS.get(row.get("accelerator"))
    if system is None:
        return None, f"accelerator {row.get('accelerator') or 'none'} has no aiconfigurator system"
    backend = BACKENDS.get(row.get("engine"))
    if backend is None:
        return None, f"engine {row.get('engine') or 'unknown'} is not TRT-LLM/SGLang/vLLM"
    weights = row.get("weights")
    if weights not in QUANT:
        return None, f"weights {weights} has no aiconfigurator quant mode here"
    metric = row.get("metric")
    if metric not in METRIC_FIELD:
        return None, f"metric {metric} has no aiconfigurator counterpart"
    model = row.get("model")
    if model in HF_MODELS:
        model_path = HF_MODELS[model]
    elif model in model_dirs:
        model_path = model_dirs[model]
    else:
        return None, f"model {model} is not one aiconfigurator reads"
    tp, dp, ep, pp = (_int(row, c) for c in ("tp", "dp_attention", "ep", "pp"))
    isl, osl, conc = (_int(row, c) for c in ("input_len", "output_len", "concurrency"))
    if tp is None or isl is None or not osl or not conc:
        return None, "tp, input_len, output_len or concurrency not stated"
    dp, pp = dp or 1, pp or 1
    job: dict = {
        "model_path": model_path,
        "system_name": system,
        "mode": "agg",
        "backend_name": backend,
        "isl": isl,
        "osl": osl,
        "batch_size": max(1, math.ceil(conc / dp)),  # aiconfigurator's batch is per attention-DP rank
        "tp_size": tp,
        "pp_size": pp,
        "attention_dp_size": dp,
        "nextn": 1 if row.get("mtp") == "1" else 0,
        **({"nextn_accepted": MTP_ACCEPTED} if row.get("mtp") == "1" else {}),
        **QUANT[weights],
    }
    if model in HF_MODELS:  # MoE: the expert layout
        ep = ep or 1
        job["moe_ep_size"] = ep
        job["moe_tp_size"] = max(1, (tp * dp) // ep)
    return job, ""


def job_key(job: dict) -> str:
    return json.dumps(job, sort_keys=True)


def distill_model_dirs(cat: Catalog, tmp: Path) -> dict[str, str]:
    """Local directories holding the distills' config.json (aiconfigurator reads a local path)."""
    out = {}
    for mid in cat.models:
        if "distill" not in mid:
            continue
        d = tmp / mid
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cat.model_config(mid)))
        out[mid] = str(d)
    return out


def run_aic(jobs: list[dict], timeout_s: int) -> dict[str, dict]:
    """Run the jobs in one child process of .venv-aic; SILICON first, HYBRID for the failures."""
    if not AIC_PY.exists():
        sys.exit(f"error: {AIC_PY} is missing; run `bash scripts/setup_aiconfigurator.sh` first")
    results: dict[str, dict] = {}
    pending = [dict(j, database_mode="SILICON") for j in jobs]
    for mode in ("SILICON", "HYBRID"):
        if not pending:
            break
        with tempfile.TemporaryDirectory() as td:
            jp, rp = Path(td) / "jobs.json", Path(td) / "results.json"
            keyed = []
            for j in pending:
                k = job_key({x: v for x, v in j.items() if x != "database_mode"})
                keyed.append(dict(j, database_mode=mode, key=k))
            jp.write_text(json.dumps(keyed))
            cmd = ["nice", "-n", "10", str(AIC_PY), str(WORKER), str(jp), str(rp)]
            print(f"aiconfigurator ({mode}): {len(keyed)} configs ...", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
            for rec in json.loads(rp.read_text()):
                rec["database_mode"] = mode
                prev = results.get(rec["key"])
                if prev is None or (not prev["ok"] and rec["ok"]):
                    if prev is not None and not rec["ok"]:
                        rec["error"] = prev["error"]
                    results[rec["key"]] = rec
        pending = [
            j for j in pending if not results[job_key({x: v for x, v in j.items() if x != "database_mode"})]["ok"]
        ]
    return results


def held_out(
    cat: Catalog, name: str, rows: list[Row], fit_rows: list[Row], key: Callable[[Row], str]
) -> list[RowResult]:
    """Leave-one-`key`-out predictions for `rows`, fitted on `fit_rows` minus the held-out group, as
    bench/accuracy.py does: dsdeploy.validate.fit's function `name` (with `fit_rows=` where it takes
    it), else a refit with `calibrate` once per group."""
    fn: Callable | None = getattr(fit, name, None)
    if callable(fn):
        params = inspect.signature(fn).parameters
        try:
            res, _ = fn(cat, rows, fit_rows=fit_rows) if "fit_rows" in params else fn(cat, rows)
            return list(res)
        except TypeError:
            pass  # a different signature: fall back to the refit below
    out: list[RowResult] = []
    for g in sorted({key(r) for r in rows}):
        cal = fit.calibrate(cat, [r for r in fit_rows if key(r) != g], fitted_on=f"all but {g}")
        out.extend(evaluate_rows(cat, [r for r in rows if key(r) == g], cal))
    return out


def stats(apes: list[float]) -> dict:
    apes = sorted(apes)
    if not apes:
        return {"rows": 0, "median_ape": None, "p90_ape": None, "within_30pct": None}

    def q(p: float) -> float:
        k = (len(apes) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        return apes[lo] + (apes[hi] - apes[lo]) * (k - lo)

    return {
        "rows": len(apes),
        "median_ape": q(0.5),
        "p90_ape": q(0.9),
        "within_30pct": sum(a <= 0.3 for a in apes) / len(apes),
    }


def summary(records: list[dict]) -> dict:
    """Both tools' stats on the rows both predict: overall and per file."""
    out = {}
    for name, f in (("all", None), *((k, k) for k in FILES)):
        rs = [
            r for r in records if r["aic_ape"] is not None and r["ds_ape"] is not None and (f is None or r["file"] == f)
        ]
        out[name] = {
            "aiconfigurator": stats([r["aic_ape"] for r in rs]),
            "dsdeploy_heldout": stats([r["ds_ape"] for r in rs]),
        }
    return out


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def table(records: list[dict], slices: list[tuple[str, Callable[[dict], bool]]]) -> list[str]:
    lines = [
        "| rows | both predict | aiconfigurator median APE | dsdeploy median APE | aiconfigurator within ±30 % | dsdeploy within ±30 % | aiconfigurator p90 | dsdeploy p90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines[0] = "| slice " + lines[0]
    lines[1] = "|---" + lines[1]
    for name, pred in slices:
        rs = [r for r in records if pred(r) and r["aic_ape"] is not None and r["ds_ape"] is not None]
        a, d = stats([r["aic_ape"] for r in rs]), stats([r["ds_ape"] for r in rs])
        n_all = sum(1 for r in records if pred(r))
        lines.append(
            f"| {name} | {n_all} | {len(rs)} | {pct(a['median_ape'])} | {pct(d['median_ape'])} | "
            f"{pct(a['within_30pct'])} | {pct(d['within_30pct'])} | {pct(a['p90_ape'])} | {pct(d['p90_ape'])} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--reuse", action="store_true", help="reuse aiconfigurator's results from docs/peer-aiconfigurator.json"
    )
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for the aiconfigurator child process")
    ap.add_argument(
        "--out", type=Path, default=OUT_JSON.parent, help="folder for the JSON and the markdown (default docs/)"
    )
    args = ap.parse_args(argv)
    out_json, out_md = args.out / OUT_JSON.name, args.out / OUT_MD.name

    t0 = time.time()
    cat = load_catalog()
    rows = {f: fit.core_rows(ROOT / f) for f in FILES}

    model_dirs = distill_model_dirs(cat, MODEL_DIRS)
    jobs: dict[str, tuple[dict | None, str]] = {}
    for f, rs in rows.items():
        for r in rs:
            jobs[f"{f}:{r.id}"] = aic_job(cat, r, model_dirs)
    unique = {job_key(j): j for j, _ in jobs.values() if j is not None}
    prev: dict[str, dict] = {}
    prev_seconds = 0.0
    if args.reuse and out_json.exists():
        old = json.loads(out_json.read_text())
        prev = {rec["key"]: rec for rec in old["aiconfigurator_runs"]}
        prev_seconds = float(old["seconds"]["aiconfigurator"])
    todo = [j for k, j in unique.items() if k not in prev]
    t_aic = time.time()
    aic = {k: v for k, v in prev.items() if k in unique}
    if todo:
        aic.update(run_aic(todo, args.timeout))
    t_aic = time.time() - t_aic
    reused = len(unique) - len(todo)
    if not todo:
        t_aic = prev_seconds  # every result reused: report the run that produced them

    t_ds = time.time()
    ix, pub = rows[IX_CSV], rows[PUB_CSV]
    both = fit.fit_set(ROOT / REF)  # the shipped calibration's fit set, as bench/accuracy.py fits it
    held = {
        IX_CSV: held_out(cat, "leave_one_accelerator_out", ix, both, lambda r: r.get("accelerator") or "cpu"),
        PUB_CSV: held_out(cat, "leave_one_source_out", pub, both, lambda r: r.source_key),
    }
    t_ds = time.time() - t_ds

    records = []
    for f, rs in rows.items():
        by_id = {r.id: r for r in held[f]}
        for r in rs:
            job, why = jobs[f"{f}:{r.id}"]
            rec_aic = aic.get(job_key(job)) if job else None
            measured = float(r.get("value"))
            field = METRIC_FIELD.get(r.get("metric"), "")
            aic_pred = rec_aic.get(field) if rec_aic and rec_aic["ok"] else None
            ds = by_id.get(r.id)
            records.append(
                {
                    "file": f,
                    "id": r.id,
                    "accelerator": r.get("accelerator"),
                    "engine": r.get("engine"),
                    "engine_version": r.get("engine_version"),
                    "weights": r.get("weights"),
                    "model": r.get("model"),
                    "metric": r.get("metric"),
                    "measured": measured,
                    "aic_covered": job is not None,
                    "aic_not_covered_reason": why or (rec_aic["error"] if rec_aic and not rec_aic["ok"] else ""),
                    "aic_pred": aic_pred,
                    "aic_ape": abs(aic_pred - measured) / measured if aic_pred else None,
                    "aic_backend_version": rec_aic.get("backend_version") if rec_aic else None,
                    "aic_database_mode": rec_aic.get("database_mode") if rec_aic else None,
                    "ds_pred": ds.predicted if ds else None,
                    "ds_ape": ds.ape if ds else None,
                    "ds_reason": ds.reason if ds else "no held-out result",
                    "ds_heldout": FILES[f],
                }
            )
    runs = list(aic.values())
    out_json.write_text(
        json.dumps(
            {
                "generated_by": "bench/peer_aiconfigurator.py",
                "aiconfigurator_version": "0.12.0",
                "seconds": {
                    "aiconfigurator": round(t_aic, 1),
                    "dsdeploy_heldout": round(t_ds, 1),
                    "total": round(time.time() - t0, 1),
                },
                "summary": summary(records),
                "rows": records,
                "aiconfigurator_runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    write_md(out_md, records, t_aic, t_ds, len(unique), reused)
    both = [r for r in records if r["aic_ape"] is not None and r["ds_ape"] is not None]
    a, d = stats([r["aic_ape"] for r in both]), stats([r["ds_ape"] for r in both])
    print(
        f"{len(both)} rows both predict: aiconfigurator median APE {pct(a['median_ape'])}, dsdeploy (held-out) {pct(d['median_ape'])}; "
        f"wrote {out_md} and {out_json}"
    )
    return 0


def verdict(records: list[dict]) -> list[str]:
    """One sentence per file and overall: which tool has the lower median APE on the shared rows."""
    out = []
    summ = summary(records)
    for name in ("all", *FILES):
        a, d = summ[name]["aiconfigurator"], summ[name]["dsdeploy_heldout"]
        if not a["rows"]:
            continue
        ahead = "ahead" if d["median_ape"] < a["median_ape"] else "behind"
        where = "all shared rows" if name == "all" else f"`{name}` ({FILES[name]})"
        out.append(
            f"- **{where}**, {a['rows']} rows: dsdeploy (held out) {pct(d['median_ape'])} median APE, "
            f"aiconfigurator {pct(a['median_ape'])}: dsdeploy is **{ahead}**."
        )
    return out


def _covered_with(field: str, value: str) -> Callable[[dict], bool]:
    """A slice predicate: rows aiconfigurator covers whose `field` is `value`."""
    return lambda r: bool(r["aic_covered"]) and r[field] == value


def write_md(out_md: Path, records: list[dict], t_aic: float, t_ds: float, n_configs: int, reused: int) -> None:
    accs = sorted({r["accelerator"] for r in records if r["aic_ape"] is not None})
    engines = sorted({r["engine"] for r in records if r["aic_ape"] is not None})
    metrics = sorted({r["metric"] for r in records if r["aic_ape"] is not None})
    slices: list[tuple[str, Callable[[dict], bool]]] = [
        ("**all rows aiconfigurator covers**", lambda r: r["aic_covered"]),
        (
            f"{IX_CSV} (dsdeploy: leave-one-accelerator-out)",
            lambda r: r["aic_covered"] and r["file"] == IX_CSV,
        ),
        (
            f"{PUB_CSV} (dsdeploy: leave-one-source-out)",
            lambda r: r["aic_covered"] and r["file"] == PUB_CSV,
        ),
    ]
    slices += [(f"accelerator {a}", _covered_with("accelerator", a)) for a in accs]
    slices += [(f"engine {e}", _covered_with("engine", e)) for e in engines]
    slices += [(f"metric {m}", _covered_with("metric", m)) for m in metrics]
    n = {f: sum(1 for r in records if r["file"] == f) for f in FILES}
    cov = {f: sum(1 for r in records if r["file"] == f and r["aic_ape"] is not None) for f in FILES}
    dscov = {f: sum(1 for r in records if r["file"] == f and r["ds_ape"] is not None) for f in FILES}
    why: dict[str, int] = {}
    for r in records:
        if r["aic_ape"] is None:
            k = (r["aic_not_covered_reason"] or "no prediction").split(" (")[0]
            k = (
                k.split(":")[0]
                if k.startswith(("accelerator", "engine", "weights", "model", "metric", "placement"))
                else k[:90]
            )
            why[k] = why.get(k, 0) + 1
    out = [
        "# dsdeploy against aiconfigurator (the best peer)",
        "",
        "Generated by `bench/peer_aiconfigurator.py`; do not edit by hand. Raw results, row by row: "
        "[`peer-aiconfigurator.json`](peer-aiconfigurator.json).",
        "",
        "**What is compared.** Every `core` row (ambiguity none/minor) of `data/reference/measurements/inferencex-subset.csv` "
        "and `data/reference/measurements/public.csv` that NVIDIA's [aiconfigurator](https://pypi.org/project/aiconfigurator/) 0.12.0 covers: an NVIDIA "
        "GPU it ships per-op data for, TRT-LLM / SGLang / vLLM, a DeepSeek model it reads, and the row's own parallelism "
        "(TP, attention-DP, EP, PP), ISL, OSL, concurrency and MTP. aiconfigurator runs its own estimator "
        "(`aiconfigurator.cli.api.cli_estimate`, aggregated serving, its default latest engine version, SILICON database; "
        "HYBRID where SILICON has no data for the config) in a child process from `.venv-aic`. dsdeploy's numbers are "
        "**held out**: leave-one-accelerator-out on the InferenceX subset (each accelerator's rows predicted by a "
        "calibration fitted without any row of that accelerator, from either file) and leave-one-source-out on `data/reference/measurements/public.csv` "
        "(fitted on both files and extra.csv without that source's rows), as `bench/accuracy.py` does. "
        "aiconfigurator, by contrast, carries measured per-op kernel data for every GPU it covers: its numbers are not held out.",
        "",
        "APE = |predicted − measured| ÷ measured, per row; both tools on the same rows.",
        "",
        *verdict(records),
        "",
        *table(records, slices),
        "",
        "Caveats, both ways: aiconfigurator's per-op data were measured on the very GPUs it predicts (B200, H200), so its "
        "numbers are in-sample for the hardware, while dsdeploy's are held out by accelerator or by source. aiconfigurator "
        "predicts with its own latest engine versions, not the row's build (`engine_version` in the InferenceX rows), and its "
        "`agg` mode models steady-state in-flight batching, not the burst of `concurrency` requests a benchmark client starts "
        "at once, which dominates TTFT at high concurrency.",
        "",
        "## Coverage",
        "",
        "| file | core rows | aiconfigurator predicts | dsdeploy predicts (held-out) |",
        "|---|---|---|---|",
        *[
            f"| {f} | {n[f]} | {cov[f]} ({pct(cov[f] / n[f] if n[f] else None)}) | {dscov[f]} ({pct(dscov[f] / n[f] if n[f] else None)}) |"
            for f in FILES
        ],
        "",
        "Why aiconfigurator has no prediction for the other rows:",
        "",
        "| reason | rows |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(why.items(), key=lambda kv: -kv[1])],
        "",
        "## How the rows map to aiconfigurator",
        "",
        "- accelerator → system: " + ", ".join(f"`{k}`→`{v}`" for k, v in SYSTEMS.items()) + ".",
        "- `batch_size` = concurrency ÷ attention-DP (aiconfigurator's batch is per attention-DP rank); "
        "`moe_ep_size` = `ep`, `moe_tp_size` = TP × DP ÷ EP; `nextn` = 1 where `mtp` = 1, with `nextn_accepted` = 0.85 (aiconfigurator has no default; "
        "0.85 is dsdeploy's own figure, DeepSeek-V3 report §5.4.3).",
        "- `fp8` and `bf16`: the checkpoint's own quantization, which aiconfigurator infers. `nvfp4`: MoE `nvfp4`, "
        "other GEMMs `fp8_block` (NVIDIA's DeepSeek NVFP4 checkpoints keep attention in FP8; data/reference/measurements/SCHEMA.md).",
        "- R1 distills: aiconfigurator reads the distill's `config.json` (the copy in `src/dsdeploy/catalog/data/models/`).",
        "- Metrics: `ttft_ms`, `tpot_ms`, `output_tok_s_per_gpu` (tokens/s/gpu), `output_tok_s_total` (tokens/s), "
        "`decode_tok_s_per_user` (tokens/s/user), `e2e_ms` (request latency). `prefill_tok_s` has no counterpart.",
        "- `large` rows (wide-EP, PD-disaggregated) are not compared here.",
        "",
        "## Rerun",
        "",
        "```",
        "bash scripts/setup_aiconfigurator.sh            # once: .venv-aic with aiconfigurator 0.12.0 (never a dsdeploy dependency)",
        "PYTHONPATH=src nice -n 10 .venv/bin/python bench/peer_aiconfigurator.py            # everything",
        "PYTHONPATH=src nice -n 10 .venv/bin/python bench/peer_aiconfigurator.py --reuse    # dsdeploy side only",
        "```",
        "",
        f"aiconfigurator: {n_configs} distinct configs, {t_aic:.0f} s on this machine's shared CPU"
        + (f" ({reused} results reused from the previous run with `--reuse`)" if reused else "")
        + f"; dsdeploy's held-out fits: {t_ds:.0f} s.",
        "",
    ]
    out_md.write_text("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
