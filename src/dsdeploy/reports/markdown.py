"""Markdown rendering of planner results (`dsdeploy plan --markdown`, `dsdeploy seed-check --write`)."""

from __future__ import annotations

from dsdeploy.reports import fmt_num, gb, perf_cell, verdict_of


def _esc(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(_esc(c) for c in r) + " |" for r in rows]
    return out


def plan_markdown(res: dict) -> str:
    wl, par = res["workload"], res["parallelism"]
    L = [f"# dsdeploy plan: {res['description']}", ""]
    L.append(
        f"KV cache {res['kv_dtype']}; tp {par['tp']}, pp {par['pp']}, ep {par['ep']}, dp-attention {par['dp_attention']}; "
        f"workload {wl['input_len']:,} input + {wl['output_len']:,} output tokens, concurrency {wl['concurrency']}."
    )
    L += ["", f"**Verdict: {verdict_of(res).upper()}** — {res['reason']}", ""]
    L += [f"**Binding constraint:** {res['binding_text']}", ""]
    L.append(
        f"Weights in total {gb(res['weights_bytes_total'])} GB; KV cache {fmt_num(res['kv_bytes_per_token'])} B per token; "
        f"KV capacity {res['kv_capacity_tokens']:,} tokens = {res['max_concurrency']:,} requests of {wl['tokens_per_request']:,} tokens."
    )
    L += ["", "## Memory per device (GB = 10⁹ bytes)", ""]
    L += _table(
        ["device", "count", "weights", "KV", "activations", "overhead", "capacity", "usable", "free"],
        [
            [
                d["name"],
                str(d["count"]),
                gb(d["weights_bytes"]),
                gb(d["kv_bytes"], 2),
                gb(d["activation_bytes"], 2),
                gb(d["overhead_bytes"], 2),
                gb(d["capacity_bytes"], 0),
                gb(d["usable_bytes"]),
                gb(d["free_bytes"]),
            ]
            for d in res["per_device"]
        ],
        ["---"] + ["--:"] * 8,
    )
    L += ["", "## Weights by component (GB)", ""]
    L += _table(["component", "GB"], [[k, gb(v, 2)] for k, v in res["weights_by_component"].items()], ["---", "--:"])
    if res.get("performance_sweep"):
        rows = res["performance_sweep"]
        keys = [
            k
            for k in (
                "concurrency",
                "ttft_ms",
                "tpot_ms",
                "decode_tok_s_per_user",
                "output_tok_s_total",
                "prefill_tok_s",
                "bound",
                "band",
                "label",
            )
            if any(k in r for r in rows)
        ]
        L += ["", "## Throughput and latency across concurrency", ""]
        L += _table(keys, [[perf_cell(r.get(k)) for k in keys] for r in rows], ["--:"] * len(keys))
    if res["alternatives"]:
        L += ["", "## Alternatives that fit", ""]
        L += _table(
            [
                "deployment",
                "weights",
                "engine",
                "weights GB",
                "KV tokens",
                f"requests of {wl['tokens_per_request']:,} tokens",
            ],
            [
                [
                    a["label"],
                    a["weights"],
                    a["engine"],
                    gb(a["weights_bytes_total"]),
                    f"{a['kv_capacity_tokens']:,}",
                    f"{a['requests_at_context']:,}",
                ]
                for a in res["alternatives"]
            ],
            ["---", "---", "---", "--:", "--:", "--:"],
        )
    if res["notes"]:
        L += ["", "## Notes", ""] + [f"- {n}" for n in res["notes"]]
    if res["unconfirmed"]:
        L += ["", "## Rests on UNCONFIRMED estimates", ""] + [f"- {u}" for u in res["unconfirmed"]]
    return "\n".join(L) + "\n"


def min_count_markdown(res: dict) -> str:
    wl = res["workload"]
    lines = [
        f"# Minimum accelerators for {res['model']} {res['weights']} (KV {res['kv_dtype']})",
        "",
        f"Workload {wl['input_len']:,} + {wl['output_len']:,} tokens, concurrency {wl['concurrency']}; "
        f"1–8 per node, up to {res['search']['max_nodes']} nodes.",
        "",
        "| accelerator | per node | nodes | engine | weights GB | KV tokens | requests |",
        "|---|--:|--:|---|--:|--:|--:|",
    ]
    for r in res["results"]:
        lines.append(
            f"| {r['accelerator']} | {r['accelerators_per_node']} | {r['nodes']} | {r['engine']} | "
            f"{gb(r['weights_bytes_total'])} | {r['kv_capacity_tokens']:,} | {r['requests_at_context']:,} |"
        )
    if res["not_fitting"]:
        lines += [
            "",
            "Not fitting or not runnable: " + "; ".join(f"{s['accelerator']} ({s['why']})" for s in res["not_fitting"]),
        ]
    return "\n".join(lines) + "\n"


def seedcheck_markdown(claims: list[dict], article: str) -> str:
    counts: dict[str, int] = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    L = [
        "# Seed article: quantitative claims checked",
        "",
        "<!-- Generated by `dsdeploy seed-check --write docs/seed-article-check.md`; edit "
        "src/dsdeploy/planner/seedcheck.py, not this file. -->",
        "",
        f"Article: {article} (Chinese, dated 2025-09-26), which sizes a local deployment of DeepSeek-R1 671B "
        '("R1满血版") on 8× H100. Each claim below is quoted, then set against the number this project computes '
        "from its catalog (every catalog figure carries a source; facts.md sections are cited) and its memory planner. "
        "Claims with no number the planner can judge (software-tuning speed-ups, cloud-cost cuts) "
        "are left out.",
        "",
        "Verdicts: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ".",
        "",
    ]
    L += _table(
        ["#", "claim (quoted)", "our number", "verdict"],
        [[str(i), c["quote_zh"], c["ours"], f"**{c['verdict']}**"] for i, c in enumerate(claims, 1)],
        ["--:", "---", "---", "---"],
    )
    L += ["", "## Why, claim by claim", ""]
    for i, c in enumerate(claims, 1):
        L += [
            f"### {i}. {c['claim']} — {c['verdict']}",
            "",
            f"> {c['quote_zh']}",
            "",
            f"- Section: {c['section']}",
            f"- Ours: {c['ours']}",
            f"- Why: {c['why']}",
        ]
        if c["sources"]:
            L.append(f"- Sources: {'; '.join(c['sources'])}")
        L.append("")
    return "\n".join(L)
