"""Benchmark results as rows of the measured-scenario schema, and deployments read from plans.

The schema is `data/reference/measurements/SCHEMA.md` (26 columns; `prefill_basis` last). Every id
written must be in that schema's closed vocabulary, so a recorded file passes its checker; an
unknown id is a `UserError` naming the closest known ids.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from dsdeploy.bench.metrics import record_metrics
from dsdeploy.errors import UserError, unknown_id

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


def _id_of(v: Any) -> Any:
    """A plan field may be an id string or an object carrying one ("id", "name" or "kind")."""
    if isinstance(v, dict):
        for k in ("id", "name", "kind", "type"):
            if isinstance(v.get(k), str):
                return v[k]
        return None
    return v


def deployment_from_plan(plan: dict) -> dict[str, Any]:
    """The deployment fields found in a `dsdeploy plan --json` document; missing ones are absent.

    Tolerant of shapes: ids may be strings or objects with an "id"; parallelism may sit at the
    top level, under "placement", "parallelism" or "hardware"; the accelerator count may be
    "count", "accelerators_per_node" or "gpus_per_node".
    """
    d: dict[str, Any] = {}
    if not isinstance(plan, dict):
        return d
    for k in ("model", "weights", "kv_dtype", "engine"):
        v = _id_of(plan.get(k))
        if isinstance(v, str):
            d[k] = v
    places = [plan]
    pl = plan.get("placement")
    if isinstance(pl, str):
        d["placement"] = pl
    elif isinstance(pl, dict):
        v = _id_of(pl)
        if isinstance(v, str):
            d["placement"] = v
        places.append(pl)
    for key in ("parallelism", "hardware"):
        if isinstance(plan.get(key), dict):
            places.append(plan[key])
    hw = h if isinstance(h := plan.get("hardware"), dict) else {}
    acc = _id_of(hw.get("accelerator"))
    if isinstance(acc, str):
        d["accelerator"] = acc
    cpu = _id_of(hw.get("cpu"))
    if isinstance(cpu, str):
        d["cpu"] = cpu
    if isinstance(hw.get("dram"), str):
        d["dram"] = hw["dram"]
    for src, dst in (
        ("count", "accelerators_per_node"), ("accelerators_per_node", "accelerators_per_node"),
        ("gpus_per_node", "accelerators_per_node"), ("nodes", "nodes"),
        ("cpu_sockets", "cpu_sockets"), ("sockets", "cpu_sockets"),
    ):  # fmt: skip
        if isinstance(hw.get(src), (int, float)) and not isinstance(hw.get(src), bool):
            d.setdefault(dst, int(hw[src]))
    for place in places:
        for k in ("tp", "pp", "ep", "dp_attention", "mtp"):
            v = place.get(k)
            if isinstance(v, bool):
                d.setdefault(k, int(v))
            elif isinstance(v, (int, float)):
                d.setdefault(k, int(v))
    return d


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        for k in ("value", "mid", "point", "mean", "p50"):
            if isinstance(v.get(k), (int, float)) and not isinstance(v.get(k), bool):
                return float(v[k])
    return None


def predicted_from_plan(plan: dict, concurrency: int | None = None) -> dict[str, Any]:
    """The plan's predicted metrics (ttft_ms, tpot_ms, decode_tok_s_per_user,
    output_tok_s_total, e2e_ms) as floats, plus its "band" and the "concurrency" predicted for.

    With ``concurrency``, the entry of the plan's "performance_sweep" at that concurrency is used
    when there is one, else "performance". Missing keys are absent."""
    if not isinstance(plan, dict):
        return {}
    perf = plan.get("performance")
    if concurrency is not None and isinstance(plan.get("performance_sweep"), list):
        for entry in plan["performance_sweep"]:
            if isinstance(entry, dict) and entry.get("concurrency") == concurrency:
                perf = entry
                break
    if not isinstance(perf, dict):
        return {}
    out: dict[str, Any] = {}
    for k in ("ttft_ms", "tpot_ms", "decode_tok_s_per_user", "output_tok_s_total", "e2e_ms"):
        v = _number(perf.get(k))
        if v is not None:
            out[k] = v
    if "band" in perf:
        out["band"] = perf["band"]
    if isinstance(perf.get("concurrency"), int):
        out["concurrency"] = perf["concurrency"]
    return out


def workload_from_plan(plan: dict) -> dict[str, int]:
    """input_len / output_len / concurrency the plan was made for, where it says."""
    out: dict[str, int] = {}
    if not isinstance(plan, dict):
        return out
    for place in (plan, plan.get("workload"), plan.get("performance")):
        if isinstance(place, dict):
            for k in ("input_len", "output_len", "concurrency"):
                v = place.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    out.setdefault(k, v)
    return out


def load_plan(path: str | Path) -> dict:
    """Read a plan JSON file; a missing or malformed file is a UserError."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"plan file not found: {p}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read plan {p}: {exc}") from None
    if not isinstance(doc, dict):
        raise UserError(f"plan {p} is not a JSON object")
    return doc


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
