"""The HTML report (`dsdeploy report`, `dsdeploy bench --report`) and the local UI (`dsdeploy ui`)
share this module: `chart_data` turns the plan dict (`plan --json`'s), bench results and the cost
report into chart series; `sections` draws them as inline SVG with a data table behind each chart;
`render_report` wraps them in one self-contained page (CSS inline, no script, nothing fetched).
The UI page uses the same sections and swaps them when the options change.

Edge rules: the numbers come from the planner unchanged; bytes → GB for display is the only
arithmetic here, and the knee and the cost-vs-demand lines come from `dsdeploy.planner.charts`.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from importlib import resources
from typing import Any

from dsdeploy.planner.charts import band_bounds, knee_index
from dsdeploy.reports import GB, fmt_num, gb
from dsdeploy.reports.svg import PALETTE, Axis, Bar, Segment, Series, VLine, stacked_bars, xy_chart

MEMORY_PARTS = (  # (key in the chart, plan per_device key, label, colour)
    ("weights", "weights_bytes", "weights", "#4e79a7"),
    ("kv", "kv_bytes", "KV cache at the workload", "#59a14f"),
    ("activations", "activation_bytes", "activations", "#f28e2b"),
    ("overhead", "overhead_bytes", "runtime overhead", "#b07aa1"),
    ("free", "free_bytes", "free", "#d9d9d9"),
)
FT_MEMORY_PARTS = (  # (key in the chart, where in `finetune --json`'s "memory", label, colour)
    ("weights", "gpu_model_states_breakdown.weights", "weights", "#4e79a7"),
    ("grads", "gpu_model_states_breakdown.grads", "gradients", "#76b7b2"),
    ("master", "gpu_model_states_breakdown.master", "fp32 master weights", "#9c755f"),
    ("optimizer", "gpu_model_states_breakdown.optimizer", "optimizer states", "#edc948"),
    ("gathered", "gpu_model_states_breakdown.gathered", "gathered (ZeRO-3 / FSDP)", "#ff9da7"),
    ("activations", "gpu_activation_bytes", "activations", "#f28e2b"),
    ("logits", "gpu_logits_bytes", "logits", "#e15759"),
    ("runtime", "gpu_overhead_bytes", "runtime", "#b07aa1"),
    ("allocator", "gpu_allocator_reserve_bytes", "allocator reserve", "#bab0ac"),
)
MEASURED_COLORS = ["#e15759", "#f28e2b", "#b07aa1", "#9c755f", "#76b7b2", "#edc948"]


# ---------------------------------------------------------------- chart data (tests read these)
def memory_data(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per kind of device (plan["per_device"]), the parts in bytes exactly as in the plan."""
    rows = []
    for d in plan.get("per_device", []):
        rows.append(
            {
                "name": d["name"],
                "count": d["count"],
                "parts": {key: d[src] for key, src, _, _ in MEMORY_PARTS},
                "usable_bytes": d["usable_bytes"],
                "capacity_bytes": d["capacity_bytes"],
            }
        )
    return rows


def perf_data(plan: dict[str, Any], bench_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Predicted sweep (plan["performance_sweep"], unchanged), the knee and measured runs."""
    sweep = [dict(p) for p in plan.get("performance_sweep") or []]
    k = knee_index([p["tpot_ms"] for p in sweep], [p["output_tok_s_total"] for p in sweep]) if sweep else None
    return {
        "predicted": sweep,
        "knee": None if k is None else sweep[k]["concurrency"],
        "requested": plan.get("performance"),
        "measured": list(bench_runs or []),
    }


def finetune_memory_data(doc: dict[str, Any]) -> dict[str, Any]:
    """The training memory stack per GPU from `dsdeploy finetune --json`'s document, bytes unchanged."""
    m, s, hw = doc["memory"], doc["setup"], doc["hardware"]

    def part(src: str) -> int:
        if src.startswith("gpu_model_states_breakdown."):
            return m["gpu_model_states_breakdown"].get(src.split(".", 1)[1], 0)
        return m[src]

    return {
        "name": hw["accelerator"],
        "gpus": s["gpus"],
        "nodes": s["nodes"],
        "parts": {key: part(src) for key, src, _, _ in FT_MEMORY_PARTS},
        "total_bytes": m["gpu_bytes"],
        "capacity_bytes": hw["gpu_memory_bytes"],
        "cpu_bytes_per_node": m["cpu_bytes_per_node"],
        "nvme_bytes_per_node": m["nvme_bytes_per_node"],
        "tokens_per_gpu": m["tokens_per_gpu"],
        "label": m["label"],
        "sources": m["sources"],
        "fits": doc["fits"],
        "verdict": doc["verdict"],
        "binding": doc["binding"],
        "model": doc["model"]["name"],
        "setup": s,
    }


def chart_data(
    plan: dict[str, Any] | None,
    bench_runs: list[dict[str, Any]] | None = None,
    cost: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "memory": memory_data(plan) if plan else [],
        "performance": perf_data(plan or {}, bench_runs),
        "alternatives": list((plan or {}).get("alternatives", [])),
        "cost": cost,
    }


# ---------------------------------------------------------------- drawing
def _gb_axis(v: float) -> str:
    return f"{v / GB:,.0f} GB"


def memory_svg(rows: list[dict[str, Any]], chart_id: str = "mem-chart") -> str:
    bars = []
    for r in rows:
        parts = r["parts"]
        segs = [
            Segment(key, label, max(parts[key], 0), color, f"{gb(parts[key])} GB")
            for key, _, label, color in MEMORY_PARTS
        ]
        note = ""
        if parts["free"] < 0:
            note = f"does not fit: {gb(-parts['free'])} GB over the usable {gb(r['usable_bytes'])} GB"
        bars.append(
            Bar(
                f"{r['name']} ×{r['count']}",
                segs,
                markers=[
                    ("usable", r["usable_bytes"], f"usable {gb(r['usable_bytes'])} GB"),
                    ("capacity", r["capacity_bytes"], f"capacity {gb(r['capacity_bytes'])} GB"),
                ],
                note=note,
                attrs={"device": r["name"], "free": parts["free"]},
            )
        )
    return stacked_bars(chart_id, "Memory per device: weights, KV cache, activations, overhead, free", bars, _gb_axis)


def finetune_memory_svg(row: dict[str, Any], chart_id: str = "ft-mem-chart") -> str:
    """The training memory stack of one GPU, drawn with the inference stack's chart code."""
    parts = row["parts"]
    segs = [
        Segment(key, label, max(parts[key], 0), color, f"{gb(parts[key])} GB")
        for key, _, label, color in FT_MEMORY_PARTS
    ]
    bar = Bar(
        f"{row['name']} (1 of {row['gpus']})",
        segs,
        markers=[
            ("total", row["total_bytes"], f"total {gb(row['total_bytes'])} GB"),
            ("capacity", row["capacity_bytes"], f"capacity {gb(row['capacity_bytes'])} GB"),
        ],
        note="" if row["fits"] else row["verdict"],
        attrs={"device": row["name"], "total": row["total_bytes"], "capacity": row["capacity_bytes"]},
    )
    return stacked_bars(
        chart_id, "Training memory per GPU: model states, activations, logits, runtime", [bar], _gb_axis
    )


PERF_CHARTS = (  # (latency key, x-axis label, chart id, log x axis)
    ("tpot_ms", "TPOT, ms (time per output token)", "tpot-chart", False),
    ("ttft_ms", "TTFT, ms (time to first token)", "ttft-chart", True),
)


def perf_svgs(perf: dict[str, Any], slo: dict[str, float | None]) -> dict[str, str]:
    """Two charts: total output throughput against TPOT and against TTFT, one point per concurrency."""
    return {lat: _perf_svg(perf, slo.get(lat), lat, label, chart_id, log) for lat, label, chart_id, log in PERF_CHARTS}


def _perf_series(perf: dict[str, Any], lat: str, pts: list[dict[str, Any]]) -> list[Series]:
    """The predicted sweep with its error band along `lat`, then each measured run, dashed."""
    pred = perf["predicted"]
    series = []
    if pred:
        band = [(*band_bounds(p[lat], p["band"]), p["output_tok_s_total"]) for p in pred]
        series.append(Series("predicted", "predicted", pts, PALETTE[0], band=band))
    for i, run in enumerate(perf["measured"]):
        mpts = [{**p, "run": run["name"]} for p in run["points"]]
        color = MEASURED_COLORS[i % len(MEASURED_COLORS)]
        series.append(Series(f"measured-{i}", f"measured: {run['name']}", mpts, color, dashed=True, marker="square"))
    return series


def _perf_axes(series: list[Series], lat: str, slo_v: float | None, label: str, log: bool) -> tuple[Axis, Axis]:
    """Axes that hold every point, both edges of every band and the SLO line."""
    xs = [p[lat] for s in series for p in s.points if p.get(lat)]
    xs += [b for s in series for a, b, _ in (s.band or [])] + [a for s in series for a, _, _ in (s.band or [])]
    ys = [p["output_tok_s_total"] for s in series for p in s.points if p.get("output_tok_s_total") is not None]
    if slo_v:
        xs.append(slo_v)
    return Axis.fit(xs, log=log, label=label), Axis.fit(ys, label="output tokens/s, all users")


def _perf_svg(perf: dict[str, Any], slo_v: float | None, lat: str, label: str, chart_id: str, log: bool) -> str:
    """Output throughput against one latency (`lat`), with the SLO line and the knee ringed."""
    pts = [_pt(p) for p in perf["predicted"]]
    series = _perf_series(perf, lat, pts)
    x_axis, y_axis = _perf_axes(series, lat, slo_v, label, log)
    vlines = [VLine(f"slo-{lat}", slo_v, f"SLO {slo_v:g} ms")] if slo_v else []
    hl = None
    if perf["knee"] is not None:
        kp = next(p for p in pts if p["concurrency"] == perf["knee"])
        hl = (kp, f"knee: c={perf['knee']}")
    title = f"Output throughput against {lat.split('_')[0].upper()} across concurrency"
    return xy_chart(chart_id, title, series, lat, "output_tok_s_total", x_axis, y_axis, vlines, hl)


def _pt(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p.get(k) for k in ("concurrency", "tpot_ms", "ttft_ms", "output_tok_s_total", "band", "label")}


def alternatives_svg(alts: list[dict[str, Any]]) -> str:
    bars = [
        Bar(
            a["label"][:28],
            [
                Segment(
                    "requests",
                    "requests of the requested context held at once",
                    a["max_concurrency"],
                    PALETTE[2],
                    f"{a['max_concurrency']:,}",
                )
            ],
            attrs={"alternative": a["label"], "max-concurrency": a["max_concurrency"]},
        )
        for a in alts
        if a.get("fits")
    ]
    return stacked_bars(
        "alt-chart", "Alternatives that fit: concurrent requests their KV cache holds", bars, lambda v: f"{v:,.0f}"
    )


def cost_svgs(cost: dict[str, Any]) -> dict[str, str]:
    rep, demand = cost["report"], cost["demand"]
    cur = rep["currency"]
    a = rep["annual"]
    parts = [("depreciation", PALETTE[0]), ("energy", PALETTE[3]), ("staff", PALETTE[4]), ("maintenance", PALETTE[5])]
    bar = Bar(
        "own hardware, per year",
        [Segment(k, k, a[k], c, f"{a[k]:,.0f} {cur}") for k, c in parts],
        attrs={"total": a["total"]},
    )
    out = {"breakdown": stacked_bars("cost-chart", f"Annual cost of owning, {cur}", [bar], lambda v: f"{v:,.0f}")}
    if demand:
        series = []
        for key, label, color in (
            ("own", "own hardware", PALETTE[0]),
            ("api", f"API ({rep['api_price']['provider']})", PALETTE[1]),
            ("rent", "rented GPUs", PALETTE[2]),
        ):
            pts = [{k: v for k, v in d.items() if k != "series"} for d in demand if d["series"] == key]
            if pts:
                series.append(Series(key, label, sorted(pts, key=lambda p: p["tokens_per_day"]), color))
        xs = [d["tokens_per_day"] for d in demand]
        ys = [d["annual_cost"] for d in demand]
        vl = [VLine("capacity", rep["capacity_output_tokens_per_day"], "capacity at 100 % busy", "#555")]
        be = rep.get("breakeven_tokens_per_day")
        if be is not None and be <= max(xs):
            vl.append(VLine("breakeven", be, f"break-even vs API {be:,.0f}/day"))
        out["demand"] = xy_chart(
            "demand-chart",
            f"Annual cost against demand, {cur}",
            series,
            "tokens_per_day",
            "annual_cost",
            Axis.fit(xs, log=True, label="demand, output tokens per day"),
            Axis.fit(ys, log=True, label=f"cost per year, {cur}"),
            vl,
        )
    return out


# ---------------------------------------------------------------- page
@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dsdeploy.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["gb"] = gb
    env.filters["num"] = fmt_num
    return env


def _asset(name: str) -> str:
    return resources.files("dsdeploy.reports").joinpath("templates", name).read_text(encoding="utf-8")


def context(
    plan: dict[str, Any] | None,
    *,
    inputs: dict[str, Any] | None = None,
    plan_argv: list[str] | None = None,
    launch: dict[str, Any] | None = None,
    bench_runs: list[dict[str, Any]] | None = None,
    cost: dict[str, Any] | None = None,
    slo: dict[str, float | None] | None = None,
    finetune: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the templates need: the plan, the chart data, and the drawn charts. `finetune` is
    `dsdeploy finetune --json`'s document (`report --finetune`)."""
    slo = slo or {}
    data = chart_data(plan, bench_runs, cost)
    data["finetune"] = finetune_memory_data(finetune) if finetune else None
    perf = data["performance"]
    show_perf = bool(perf["predicted"] or perf["measured"])
    return {
        "plan": plan,
        "inputs": inputs or {},
        "plan_cmd": None if plan_argv is None else " ".join(["dsdeploy plan", *plan_argv]),
        "launch": launch,
        "bench_runs": bench_runs or [],
        "cost": cost,
        "slo": slo,
        "data": data,
        "memory_svg": memory_svg(data["memory"]) if data["memory"] else "",
        "ft_memory_svg": finetune_memory_svg(data["finetune"]) if data["finetune"] else "",
        "perf_svgs": perf_svgs(perf, slo) if show_perf else {},
        "alt_svg": alternatives_svg(data["alternatives"]) if any(a.get("fits") for a in data["alternatives"]) else "",
        "cost_svgs": cost_svgs(cost) if cost else {},
        "label_of": _label_of(plan),
        "demand_rows": demand_rows(cost["demand"]) if cost else [],
    }


def demand_rows(demand: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cost-vs-demand points as a table: one row per demand, one column per way of serving it."""
    rows: dict[float, dict[str, Any]] = {}
    for d in demand:
        rows.setdefault(d["tokens_per_day"], {"tokens_per_day": d["tokens_per_day"]})[d["series"]] = d["annual_cost"]
    return [rows[k] for k in sorted(rows)]


def _label_of(plan: dict[str, Any] | None):
    labels = (plan or {}).get("labels", {})

    def f(key: str) -> str:
        return labels.get(key, "")

    return f


def render_sections(ctx: dict[str, Any]) -> str:
    return _env().get_template("sections.html.j2").render(**ctx)


def render_report(ctx: dict[str, Any], title: str | None = None) -> str:
    """One self-contained HTML page: inline CSS, inline SVG, no script, no external reference."""
    from dsdeploy import __version__

    plan = ctx.get("plan")
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            css=_asset("report.css"),
            sections=render_sections(ctx),
            title=title or ("dsdeploy report: " + (plan["description"] if plan else "bench results")),
            generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            version=__version__,
        )
    )


def render_ui_page(ctx: dict[str, Any], choices: dict[str, list[str]]) -> str:
    """The UI's page: the option form, the same sections as the report, and ui.js (inline)."""
    from dsdeploy import __version__

    return (
        _env()
        .get_template("ui.html.j2")
        .render(
            css=_asset("report.css"),
            js=_asset("ui.js"),
            sections=render_sections(ctx),
            inputs=ctx.get("form", ctx["inputs"]),
            error=ctx.get("error"),
            choices=choices,
            title="dsdeploy ui",
            version=__version__,
        )
    )
