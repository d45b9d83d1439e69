"""Read plan documents (`dsdeploy plan --json`, or plan options as keys): the deployment fields,
the workload and the predicted metrics. Shared by `dsdeploy bench --plan`, `dsdeploy doctor --plan`
and `planner.options.options_from_plan` (the one options → deployment path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsdeploy.errors import UserError


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
    hw: dict[str, Any] = plan["hardware"] if isinstance(plan.get("hardware"), dict) else {}
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
