"""Benchmark results as rows of the measured-scenario schema, and deployments read from plans.

The schema is `data/reference/measurements/SCHEMA.md` (26 columns; `prefill_basis` last). Every id
written must be in that schema's closed vocabulary, so a recorded file passes its checker; an
unknown id is a `UserError` naming the closest known ids.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from dsdeploy.bench.metrics import record_metrics
from dsdeploy.errors import UserError, unknown_id

# The plan-JSON readers live in the planner (one place, shared with `doctor --plan` and the
# options → deployment path); re-exported here for the bench command.
from dsdeploy.planner.planfile import (  # noqa: F401
    deployment_from_plan,
    load_plan,
    predicted_from_plan,
    workload_from_plan,
)

COLUMNS = (
    "id", "model", "weights", "kv_dtype", "engine", "accelerator", "accelerators_per_node",
    "nodes", "cpu", "cpu_sockets", "dram", "placement", "tp", "pp", "ep", "dp_attention", "mtp",
    "input_len", "output_len", "concurrency", "metric", "value", "scope", "ambiguity", "source",
    "prefill_basis",
)  # fmt: skip

FIXED_VOCAB: dict[str, tuple[str, ...]] = {
    "placement": ("gpu", "experts-on-cpu", "layer-split", "cpu", "unified"),
    "metric": (
        "decode_tok_s_per_user", "output_tok_s_total", "output_tok_s_per_gpu", "prefill_tok_s",
        "tpot_ms", "ttft_ms", "e2e_ms",
    ),
    "scope": ("core", "large"),
    "ambiguity": ("none", "minor", "major"),
}  # fmt: skip


def vocabulary() -> dict[str, tuple[str, ...]]:
    """Ids a recorded row may use: the catalog's (a superset of data/reference/measurements/SCHEMA.md's vocabulary, plus the
    user's `local` hardware from `dsdeploy doctor --save` and the project's tiny model), so
    `dsdeploy validate` and `calibrate` can read every row back."""
    from dsdeploy.catalog import load_catalog

    cat = load_catalog()
    return {
        "model": tuple(cat.models),
        "weights": tuple(cat.formats),
        "kv_dtype": tuple(cat.kv_dtypes),
        "engine": tuple(cat.engines),
        "accelerator": tuple(cat.accelerators),
        "cpu": tuple(cat.cpus),
        **FIXED_VOCAB,
    }


DEPLOYMENT_FIELDS = (
    "model", "weights", "kv_dtype", "engine", "accelerator", "accelerators_per_node", "nodes",
    "cpu", "cpu_sockets", "dram", "placement", "tp", "pp", "ep", "dp_attention", "mtp",
)  # fmt: skip
INT_FIELDS = ("accelerators_per_node", "nodes", "cpu_sockets", "tp", "pp", "ep", "dp_attention", "mtp")


def plan_deployment(plan: dict, where: str = "--plan"):
    """The Deployment a plan document describes, through the planner's one options → deployment
    path (the same as `dsdeploy plan` and `doctor --plan`); a plan that cannot run is a UserError."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.planner.options import build, options_from_plan

    return build(options_from_plan(plan, where), load_catalog())


def validate_deployment(dep: dict[str, Any]) -> dict[str, Any]:
    """Check ids against the schema vocabulary and integers for sanity; returns a clean copy."""
    out: dict[str, Any] = {}
    for k in DEPLOYMENT_FIELDS:
        v = dep.get(k)
        if v is None or v == "":
            continue
        if k in INT_FIELDS:
            try:
                iv = int(v)
            except (TypeError, ValueError):
                raise UserError(f"{k} must be an integer, got {v!r}") from None
            if iv < 0 or (k == "mtp" and iv not in (0, 1)):
                raise UserError(f"{k} out of range: {iv}")
            out[k] = iv
            continue
        s = str(v).strip().lower()
        vocab = vocabulary()
        if k == "model" and s not in vocab["model"]:
            from dsdeploy.catalog import load_catalog

            s = load_catalog().model(s).id  # aliases → ids; unknown → error with close matches
        if k in vocab and s not in vocab[k]:
            raise unknown_id(k.replace("_", " "), s, list(vocab[k]))
        out[k] = s
    if "model" not in out:
        raise UserError("--record needs the deployed model: pass --deploy-model or --plan")
    if "placement" not in out:
        raise UserError("--record needs --placement (gpu, experts-on-cpu, layer-split, cpu, unified)")
    if out.get("placement") == "cpu":
        out.setdefault("accelerators_per_node", 0)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e6 else f"{v:.1f}"
    return str(v)


def scenario_rows(
    levels: list[dict],
    deployment: dict[str, Any],
    source: str,
    run_id: str,
) -> list[dict[str, str]]:
    """One schema row per metric per level. ``input_len``/``output_len`` are the level's measured
    means per successful request (rounded); ``concurrency`` is the level's fixed concurrency
    (empty for an uncapped request-rate level, whose workload is then ambiguity `major`)."""
    rows: list[dict[str, str]] = []
    for li, lv in enumerate(levels):
        metrics = record_metrics(lv)
        in_len = round(lv["mean_input_tokens"]) if lv.get("mean_input_tokens") is not None else None
        out_len = round(lv["mean_output_tokens"]) if lv.get("mean_output_tokens") is not None else None
        conc = lv.get("concurrency")
        ambiguity = "none" if conc and in_len is not None and out_len else "major"
        for metric, value in metrics.items():
            row = {c: "" for c in COLUMNS}
            row.update({k: _fmt(v) for k, v in deployment.items()})
            row.update(
                id=f"{run_id}-l{li + 1}-{metric}",
                input_len=_fmt(in_len),
                output_len=_fmt(out_len),
                concurrency=_fmt(conc),
                metric=metric,
                value=_fmt(value),
                scope="core",
                ambiguity=ambiguity,
                source=source,
                prefill_basis="",
            )
            rows.append(row)
    return rows


def append_rows(path: str | Path, rows: list[dict[str, str]]) -> None:
    """Append rows to a CSV in the schema; writes the header if the file is new or empty. An
    existing file must have the schema's columns (extra columns are allowed and left empty)."""
    p = Path(path)
    header: list[str] | None = None
    if p.exists() and p.stat().st_size > 0:
        with p.open(newline="") as f:
            header = next(csv.reader(f), None)
        missing = [c for c in COLUMNS if c not in (header or [])]
        if missing:
            raise UserError(f"{p} is not in the scenario schema: missing columns {', '.join(missing)}")
    try:
        with p.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header or list(COLUMNS), restval="", extrasaction="ignore")
            if header is None:
                w.writeheader()
            w.writerows(rows)
    except OSError as exc:
        raise UserError(f"cannot write {p}: {exc}") from None
