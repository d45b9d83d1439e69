"""`recommend`: rank ways to serve a workload — buy (hardware × count × format × engine), rent, the API,
hybrid (local base load + API overflow) — and the seed article's own alternatives with their computed
consequences (4-bit quantization, a distilled model, a smaller LoRA-tuned model, a cloud–edge split).

Every option is costed with the same cost report as `dsdeploy cost` (planner/bom.py) at the workload's
actual daily volume, so "cost per 1M output tokens" is what that volume costs per million. No I/O.

Sizing: the deployment must hold the peak concurrency's KV cache (planner.min_count) and meet the TTFT
and TPOT SLOs at that concurrency (estimators.performance). If one copy's throughput at the peak cannot
carry the day's average load at ≤ 80 % busy, copies are added. Utilization = average load ÷ capacity.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.prices import PriceBook
from dsdeploy.errors import UserError
from dsdeploy.estimators import cost as C
from dsdeploy.estimators.memory import Workload
from dsdeploy.planner.bom import CostOptions, api_model_for, cost_report, predict_throughput
from dsdeploy.planner.demand import MAX_BUSY, Demand, copies_and_utilization  # noqa: F401
from dsdeploy.planner.plan import Evaluated, _try, format_runs_on, min_count
from dsdeploy.specs.model import ModelSpec

HYBRID_CPU_BOXES = (  # (label, accelerator, cpu, sockets, dram_gb, format, placement)
    (
        "1× rtx-4090 + 2× xeon-6980p, 1 TB DDR5 (KTransformers AMX)",
        "rtx-4090",
        "xeon-6980p",
        2,
        1024,
        "amx-int4",
        "experts-on-cpu",
    ),
    (
        "1× rtx-4090 + 2× epyc-9654, 1 TB DDR5 (llama.cpp -ot exps=CPU)",
        "rtx-4090",
        "epyc-9654",
        2,
        1024,
        "gguf-q4_k_m",
        "experts-on-cpu",
    ),
    ("CPU only: 2× xeon-6980p, 1 TB DDR5 (llama.cpp)", None, "xeon-6980p", 2, 1024, "gguf-q4_k_m", "cpu"),
)
DISTILLS = ("r1-distill-qwen-32b", "r1-distill-llama-70b")
LORA_BASE = "r1-distill-qwen-14b"
SMALL_HW = ("rtx-4090", "rtx-5090", "l40s", "a100-sxm-80g", "h100-sxm", "h200-sxm")


@dataclass
class Option:
    kind: str  # buy | rent | api | hybrid | article
    label: str
    model: str
    cost_per_mtok_output: float
    annual: float
    capex: float
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    meets_slo: bool | None = None
    feasible: bool = True
    reasons: list[str] = field(default_factory=list)
    deployment: str | None = None
    copies: int = 1
    utilization: float | None = None
    quality: str = ""
    cost_per_mtok_blended: float | None = None
    ev: Evaluated | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {
            "kind": self.kind,
            "label": self.label,
            "model": self.model,
            "feasible": self.feasible,
            "cost_per_mtok_output": r(self.cost_per_mtok_output),
            "cost_per_mtok_blended": r(self.cost_per_mtok_blended),
            "annual": round(self.annual, 2),
            "capex": round(self.capex, 2),
            "ttft_ms": r(self.ttft_ms),
            "tpot_ms": r(self.tpot_ms),
            "meets_slo": self.meets_slo,
            "deployment": self.deployment,
            "copies": self.copies,
            "utilization": r(self.utilization),
            "quality": self.quality,
            "reasons": self.reasons,
        }


def _slo(d: Demand, ttft: float, tpot: float) -> tuple[bool, list[str]]:
    why, ok = [], True
    if d.ttft_ms is not None and ttft > d.ttft_ms:
        ok = False
        why.append(f"TTFT {ttft:,.0f} ms > SLO {d.ttft_ms:g} ms")
    if d.tpot_ms is not None and tpot > d.tpot_ms:
        ok = False
        why.append(f"TPOT {tpot:,.1f} ms > SLO {d.tpot_ms:g} ms")
    return ok, why


def cost_local(
    catalog: Catalog,
    ev: Evaluated,
    d: Demand,
    book: PriceBook,
    opts: CostOptions,
    label: str,
    kind: str = "buy",
    calibration=None,
    share: float = 1.0,
    concurrency: int | None = None,
) -> Option | None:
    """Cost a deployment carrying `share` of the demand."""
    dep = ev.deployment
    conc = concurrency or d.peak_concurrency
    wl = Workload(d.input_len, d.output_len, conc)
    perf = predict_throughput(dep, wl, calibration)
    if perf is None:
        raise UserError("recommend needs the performance model (dsdeploy.estimators.performance)")
    if perf.output_tok_s_total <= 0:
        return None
    need = d.avg_output_tok_s * share
    copies, util = copies_and_utilization(need, perf.output_tok_s_total)
    rep = cost_report(catalog, dep, wl, ev.memory, book, replace(opts, utilization=util), perf=perf)
    ok, why = _slo(d, perf.ttft_ms, perf.tpot_ms)
    capex = rep["capex"] * copies
    annual = rep["annual"]["total"] * copies
    reasons = [
        f"{dep.describe()}" + (f" × {copies} copies" if copies > 1 else ""),
        f"TTFT {perf.ttft_ms:,.0f} ms, TPOT {perf.tpot_ms:,.1f} ms at {conc} concurrent ({perf.label})",
        f"{util:.1%} busy; capex {capex:,.0f}, {rep['annual']['total'] * copies:,.0f}/yr "
        f"(energy {rep['annual']['energy'] * copies:,.0f}, {rep['power_kw']['load'] * copies:.1f} kW at load)",
        f"cooling: {rep['cooling']['guidance']}",
    ] + why
    if d.budget is not None and capex > d.budget:
        reasons.append(f"capex {capex:,.0f} exceeds the budget {d.budget:,.0f}")
    if dep.accelerator is not None and book.catalog.accelerator[dep.accelerator.id].purchase.label == "unconfirmed":
        reasons.append(
            f"{dep.accelerator.id} purchase price is an UNCONFIRMED estimate "
            f"({book.catalog.accelerator[dep.accelerator.id].purchase.source})"
        )
    if rep["server_class"] == "included" and dep.accelerator is not None and not dep.accelerator.unified_memory:
        reasons.append(f"{dep.accelerator.id} is sold as NVL72 racks (72 GPUs); the per-GPU share of a rack is shown")
    q = dep.weights
    return Option(
        kind=kind,
        label=label,
        model=dep.model_id,
        cost_per_mtok_output=annual / (need * C.SECONDS_PER_YEAR / 1e6) if need > 0 else math.inf,
        cost_per_mtok_blended=annual
        / (need * C.SECONDS_PER_YEAR / 1e6)
        / ((d.input_len + d.output_len) / d.output_len),
        annual=annual,
        capex=capex,
        ttft_ms=perf.ttft_ms,
        tpot_ms=perf.tpot_ms,
        meets_slo=ok,
        feasible=ok and (d.budget is None or capex <= d.budget),
        reasons=reasons,
        deployment=dep.describe(),
        copies=copies,
        utilization=util,
        quality=f"{q.id} ({q.name}, quality rank {q.quality_rank})",
        ev=ev,
    )


def api_option(
    d: Demand, book: PriceBook, provider: str, model: str, date: str | None, cache_hit: float, share: float = 1.0
) -> Option:
    pid, p = book.api_period(provider, model, date)
    per = C.api_cost_per_mtok_output(
        d.input_len,
        d.output_len,
        book.money(p.output),
        book.money(p.input_miss),
        book.money(p.input_hit) if p.input_hit else None,
        cache_hit,
    )
    annual = per * d.output_tokens_per_day * share * 365 / 1e6
    reasons = [
        f"{provider} {model} prices from {p.start} ({p.output.cite()}): "
        f"input {book.money(p.input_miss):.4g}, output {book.money(p.output):.4g} {book.currency} per 1M",
        "latency is the provider's: no TTFT/TPOT guarantee",
    ]
    feasible = True
    if d.on_prem:
        feasible = False
        reasons.append("data leaves the premises (--on-prem)")
    return Option(
        kind="api",
        label=f"API: {provider} {model}",
        model=model,
        cost_per_mtok_output=per,
        cost_per_mtok_blended=per / ((d.input_len + d.output_len) / d.output_len),
        annual=annual,
        capex=0.0,
        feasible=feasible,
        reasons=reasons,
    )


def _buy_candidates(
    catalog: Catalog, model_id: str, spec: ModelSpec, d: Demand, kv: str
) -> list[tuple[Evaluated, str]]:
    wl = Workload(d.input_len, d.output_len, d.peak_concurrency)
    out = []
    for acc in catalog.accelerators.values():
        if "not stated" in acc.name:
            continue  # generic ids (form factor unknown) duplicate a specific entry
        for fmt in catalog.formats.values():
            if fmt.quality_rank > d.max_quality_rank:
                continue
            if acc.unified_memory:
                if not format_runs_on(catalog, fmt.id, acc.id, "unified"):
                    continue
                from dsdeploy.specs.deployment import default_engine

                for n in (1, 2, 4):
                    ev = _try(
                        catalog,
                        model_id,
                        spec,
                        wl,
                        weights=fmt.id,
                        kv_dtype=kv,
                        accelerator=acc.id,
                        count=n,
                        placement="unified",
                        engine=default_engine(fmt, "unified") if n == 1 else "exo",
                    )
                    if ev is not None and ev.memory.fits:
                        out.append((ev, f"buy {n}× {acc.id}, {fmt.id}"))
                        break
                continue
            ev = min_count(catalog, model_id, spec, fmt.id, kv, wl, acc.id)
            if ev is not None:
                dd = ev.deployment
                out.append(
                    (
                        ev,
                        f"buy {dd.devices}× {acc.id}"
                        + (f" ({dd.nodes} nodes)" if dd.nodes > 1 else "")
                        + f", {fmt.id}, {dd.engine.id}",
                    )
                )
    for label, acc, cpu, sockets, dram_gb, fmt, placement in HYBRID_CPU_BOXES:
        if catalog.formats.get(fmt) is None or catalog.formats[fmt].quality_rank > d.max_quality_rank:
            continue
        if not spec.is_moe and placement == "experts-on-cpu":
            continue
        ev = _try(
            catalog,
            model_id,
            spec,
            wl,
            weights=fmt,
            kv_dtype=kv,
            accelerator=acc,
            count=1 if acc else 0,
            placement=placement,
            cpu=cpu,
            cpu_sockets=sockets,
            dram="ddr5",
            dram_gb=dram_gb,
        )
        if ev is not None and ev.memory.fits:
            out.append((ev, f"buy {label}, {fmt}"))
    return out


def _cheapest_small(catalog, model_id, d, book, opts, kv, calibration, label) -> Option | None:
    from dsdeploy.specs.model import load_model_spec

    spec = load_model_spec(model_id)
    wl = Workload(d.input_len, d.output_len, d.peak_concurrency)
    best = None
    for acc in SMALL_HW:
        if acc not in catalog.accelerators:
            continue
        for fmt in ("bf16", "fp8", "awq-int4"):
            ev = min_count(catalog, model_id, spec, fmt, kv, wl, acc)
            if ev is None:
                continue
            o = cost_local(catalog, ev, d, book, opts, label, kind="article", calibration=calibration)
            if o is not None and o.meets_slo is not False and (best is None or o.annual < best.annual):
                best = o
    return best


def recommend(
    catalog: Catalog,
    model_id: str,
    spec: ModelSpec,
    d: Demand,
    book: PriceBook,
    opts: CostOptions,
    kv_dtype: str = "bf16",
    calibration=None,
    api_date: str | None = None,
    api_cache_hit: float = 0.0,
    top: int = 12,
) -> dict:
    t0 = time.perf_counter()
    opts.validate()
    api_model = api_model_for(model_id)
    options: list[Option] = []
    buys: list[Option] = []
    for ev, label in _buy_candidates(catalog, model_id, spec, d, kv_dtype):
        try:
            o = cost_local(catalog, ev, d, book, opts, label, calibration=calibration)
        except UserError:
            continue  # no price for this hardware
        if o is not None:
            buys.append(o)
    buys.sort(key=lambda o: (not o.feasible, o.annual))
    # keep the cheapest option per accelerator (+ engine/placement) so the list spans the catalog
    seen, kept = set(), []
    for o in buys:
        w = o.ev.deployment.weights
        low_bit = sum(s.value for s in w.bpw.values()) / len(w.bpw) < 7.5
        key = (o.label.split(",")[0].split("× ", 1)[-1], low_bit)
        if key in seen:
            continue
        seen.add(key)
        kept.append(o)
    options += kept
    # rent the same GPUs (top buy options that have a rental price)
    for o in [b for b in kept if b.feasible][:12]:
        rent = _rent_option(catalog, o, d, book, opts, buys_by_label={b.label: b for b in buys})
        if rent is not None:
            options.append(rent)
    # the API(s)
    for prov in book.catalog.api:
        try:
            options.append(
                api_option(
                    d, book, prov, api_model, api_date if prov == book.catalog.defaults.api else None, api_cache_hit
                )
            )
        except UserError:
            continue
    # hybrid: the cheapest local option sized for (1 − overflow) of the peak, the rest to the API
    best_local = next((o for o in kept if o.feasible), None)
    if best_local is not None and d.overflow_share > 0:
        ev = _ev_for(catalog, best_local, spec, d, kv_dtype, math.ceil(d.peak_concurrency * (1 - d.overflow_share)))
        if ev is not None:
            base = cost_local(
                catalog,
                ev,
                d,
                book,
                opts,
                "",
                calibration=calibration,
                share=1 - d.overflow_share,
                concurrency=max(1, math.ceil(d.peak_concurrency * (1 - d.overflow_share))),
            )
            api = api_option(
                d, book, book.catalog.defaults.api, api_model, api_date, api_cache_hit, share=d.overflow_share
            )
            if base is not None:
                annual = base.annual + api.annual
                per = annual / (d.output_tokens_per_day * 365 / 1e6)
                reasons = [
                    f"local: {base.deployment}, {1 - d.overflow_share:.0%} of tokens",
                    f"API overflow at peaks: {d.overflow_share:.0%} of tokens ({api.annual:,.0f}/yr; --overflow-share)",
                ] + base.reasons[1:3]
                feasible = base.feasible and not d.on_prem
                if d.on_prem:
                    reasons.append("overflow leaves the premises (--on-prem)")
                options.append(
                    Option(
                        kind="hybrid",
                        label=f"hybrid: {base.deployment} + API overflow",
                        model=model_id,
                        cost_per_mtok_output=per,
                        annual=annual,
                        capex=base.capex,
                        ttft_ms=base.ttft_ms,
                        tpot_ms=base.tpot_ms,
                        meets_slo=base.meets_slo,
                        feasible=feasible,
                        reasons=reasons,
                        deployment=base.deployment,
                        utilization=base.utilization,
                        quality=base.quality,
                        cost_per_mtok_blended=per / ((d.input_len + d.output_len) / d.output_len),
                    )
                )
    options += article_options(catalog, model_id, spec, d, book, opts, kv_dtype, calibration, best_local)
    if d.on_prem:
        for o in options:
            if o.kind == "rent" and o.feasible:
                o.feasible = False
                o.reasons.append("rented cloud GPUs: data leaves the premises (--on-prem)")
    kind_order = {"buy": 0, "hybrid": 1, "rent": 2, "api": 3, "article": 4}
    options.sort(key=lambda o: (not o.feasible, o.cost_per_mtok_output, kind_order[o.kind]))
    ranked = [o for o in options if o.kind != "article"][:top]
    for kind in ("buy", "rent", "api", "hybrid"):  # always show the best of each kind
        best = next((o for o in options if o.kind == kind), None)
        if best is not None and best not in ranked:
            ranked.append(best)
    shown = ranked + [o for o in options if o.kind == "article"]
    return {
        "model": model_id,
        "currency": book.currency,
        "demand": {
            "requests_per_day": round(d.requests_per_day, 2),
            "input_len": d.input_len,
            "output_len": d.output_len,
            "output_tokens_per_day": round(d.output_tokens_per_day),
            "avg_output_tok_s": round(d.avg_output_tok_s, 3),
            "peak_concurrency": d.peak_concurrency,
            "ttft_ms_slo": d.ttft_ms,
            "tpot_ms_slo": d.tpot_ms,
            "on_prem": d.on_prem,
            "budget": d.budget,
        },
        "options": [dict(rank=i + 1, **o.to_dict()) for i, o in enumerate(shown)],
        "considered": len(buys) + len(options) - len(kept),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }


def _ev_for(catalog, o: Option, spec, d: Demand, kv: str, conc: int) -> Evaluated | None:
    """The hardware of option `o`, re-sized for a lower concurrency (the hybrid's local part)."""
    dep = o.ev.deployment
    wl = Workload(d.input_len, d.output_len, max(1, conc))
    if dep.placement == "gpu" and dep.accelerator is not None:
        return (
            min_count(catalog, o.model, spec, dep.weights.id, kv, wl, dep.accelerator.id, engine=dep.engine.id) or o.ev
        )
    return o.ev


def _rent_option(catalog, o: Option, d: Demand, book: PriceBook, opts: CostOptions, buys_by_label) -> Option | None:
    acc_id = o.label.split("× ", 1)[-1].split(",")[0].split(" ")[0] if "× " in o.label else None
    if acc_id is None or acc_id not in catalog.accelerators:
        return None
    ap = book.catalog.accelerator.get(acc_id)
    if ap is None or ap.rent_hour is None or "+" in o.label:
        return None
    n = int(o.label.split("buy ", 1)[-1].split("×")[0]) * o.copies
    staff = (opts.staff_fte if opts.staff_fte is not None else book.catalog.staff.fte.value) * (
        opts.salary if opts.salary is not None else book.money(book.catalog.staff.salary)
    )
    annual = C.rent_annual(n, book.money(ap.rent_hour)) + staff
    per = annual / (d.output_tokens_per_day * 365 / 1e6)
    return Option(
        kind="rent",
        label=f"rent {n}× {acc_id} on demand (24/7)",
        model=o.model,
        cost_per_mtok_output=per,
        cost_per_mtok_blended=per / ((d.input_len + d.output_len) / d.output_len),
        annual=annual,
        capex=0.0,
        ttft_ms=o.ttft_ms,
        tpot_ms=o.tpot_ms,
        meets_slo=o.meets_slo,
        feasible=bool(o.meets_slo),
        reasons=[
            f"{n} × {book.money(ap.rent_hour):.3g} {book.currency}/GPU-hour × 8,760 h ({ap.rent_hour.cite()}) + staff {staff:,.0f}",
            f"same layout as: {o.deployment}",
        ],
        deployment=o.deployment,
        quality=o.quality,
    )


def article_options(
    catalog, model_id, spec, d: Demand, book, opts, kv, calibration, best_local: Option | None
) -> list[Option]:
    """The seed article's section 五 alternatives, each with what it actually implies."""
    out: list[Option] = []
    wl = Workload(d.input_len, d.output_len, d.peak_concurrency)
    # 1. 4-bit quantization: "167 GB, runs on a single A100 (80GB)"
    one = _try(
        catalog,
        model_id,
        spec,
        wl,
        weights="awq-int4",
        kv_dtype=kv,
        accelerator="a100-sxm-80g",
        count=1,
        placement="gpu",
    )
    w_gb = one.memory.weights_bytes_total / 1e9 if one else float("nan")
    ev = min_count(catalog, model_id, spec, "awq-int4", kv, wl, "a100-sxm-80g")
    if ev is not None:
        o = cost_local(
            catalog,
            ev,
            d,
            book,
            opts,
            f"article: 4-bit quantization → {ev.deployment.devices}× a100-sxm-80g, awq-int4",
            kind="article",
            calibration=calibration,
        )
        if o:
            o.reasons.insert(
                0,
                f"article claims 4-bit R1 is 167 GB and runs on one A100 80GB; computed: {w_gb:,.0f} GB of "
                f"weights, needs {ev.deployment.devices}× A100 80GB for {d.peak_concurrency} concurrent requests",
            )
            out.append(o)
    # 2. distilled models
    for mid in DISTILLS:
        if mid not in catalog.models:
            continue
        o = _cheapest_small(catalog, mid, d, book, opts, kv, calibration, f"article: distilled model {mid}")
        if o:
            o.label = f"article: distilled model {mid} on {o.deployment.split(' on ', 1)[-1]}"
            o.reasons.insert(
                0, "a different, smaller dense model distilled from R1: weaker than R1 (quality is not modelled)"
            )
            out.append(o)
    # 3. smaller LoRA-tuned model
    if LORA_BASE in catalog.models:
        o = _cheapest_small(catalog, LORA_BASE, d, book, opts, kv, calibration, "")
        if o:
            o.label = (
                f"article: LoRA-tuned smaller model ({LORA_BASE} + adapter) on {o.deployment.split(' on ', 1)[-1]}"
            )
            o.reasons.insert(
                0,
                "article: 'LoRA cuts 671B to 10B trainable parameters, memory −98%' — LoRA shrinks what is "
                "trained, not what is served: R1 + a LoRA adapter needs R1's full memory. A LoRA-tuned "
                f"smaller model means serving {LORA_BASE} (+ a few hundred MB adapter)",
            )
            out.append(o)
    # 4. cloud–edge split: inference on local hardware, training/fine-tuning rented on demand
    if best_local is not None:
        ap = book.catalog.accelerator.get("h100-sxm")
        if ap and ap.rent_hour:
            train = C.rent_annual(1, book.money(ap.rent_hour), hours=d.finetune_gpu_hours)
            annual = best_local.annual + train
            per = annual / (d.output_tokens_per_day * 365 / 1e6)
            reasons = [
                "article: 'inference local, training on cloud GPUs on demand, cost −70%': this tool sizes inference only; "
                "the saving is against buying training hardware, which an inference deployment never needed",
                f"local: {best_local.deployment}; cloud: {d.finetune_gpu_hours:g} H100 GPU-hours/yr = {train:,.0f} "
                f"({ap.rent_hour.cite()}; --finetune-gpu-hours)",
            ]
            feasible = best_local.feasible
            if d.on_prem:
                feasible = False
                reasons.append("fine-tuning data leaves the premises (--on-prem)")
            out.append(
                Option(
                    kind="article",
                    label=f"article: cloud–edge split ({best_local.deployment} + rented fine-tuning)",
                    model=model_id,
                    cost_per_mtok_output=per,
                    annual=annual,
                    capex=best_local.capex,
                    ttft_ms=best_local.ttft_ms,
                    tpot_ms=best_local.tpot_ms,
                    meets_slo=best_local.meets_slo,
                    feasible=feasible,
                    reasons=reasons,
                    deployment=best_local.deployment,
                    quality=best_local.quality,
                    cost_per_mtok_blended=per / ((d.input_len + d.output_len) / d.output_len),
                )
            )
    return out


# ---------------------------------------------------------------------------- docs/cost.md
HOSPITAL = dict(
    requests_per_day=1200,
    input_len=1500,
    output_len=1000,
    peak_concurrency=16,
    ttft_ms=3000.0,
    tpot_ms=100.0,
    on_prem=True,
    max_quality_rank=1,
)


def cost_doc() -> str:
    """docs/cost.md, generated from the code and the catalogs (python -m dsdeploy.cli.cmd_cost --write-doc)."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.catalog.prices import PriceBook, load_prices
    from dsdeploy.estimators.cost import (
        SEED_BOM,
        SEED_FTE,
        SEED_KWH_PER_YEAR,
        SEED_PRICE_PER_KWH,
        SEED_SALARY,
        seed_table,
    )
    from dsdeploy.estimators.power import annual_energy, gpu_server_power
    from dsdeploy.planner.costing import build_cost
    from dsdeploy.specs.model import load_model_spec

    f0 = lambda x: "n/a" if x is None else f"{x:,.0f}"  # noqa: E731
    f2 = lambda x: "n/a" if x is None else f"{x:,.2f}"  # noqa: E731
    L: list[str] = []
    L += [
        "# Cost: BOM, power, TCO and cost per token",
        "",
        "<!-- generated by `python -m dsdeploy.cli.cmd_cost --write-doc docs/cost.md`; do not edit by hand -->",
        "",
        "`dsdeploy cost <plan options>` prices a deployment: bill of materials, power at idle and at load, energy with",
        "PUE, cooling guidance, cold-start time, total cost per year, cost per 1M output tokens, and the same workload on",
        "the DeepSeek API and on rented GPUs, with the break-even volume. `dsdeploy recommend` ranks buy / rent / API /",
        "hybrid options (and the seed article's alternatives) for a workload. Prices live in",
        "`src/dsdeploy/catalog/data/prices.toml`, each with a date and a source; estimates are marked `unconfirmed`.",
        '`--prices my.toml` overrides any key, e.g. `[accelerator."h100-sxm".purchase]` `value = 210000`, `currency = "CNY"`.',
        "",
        "## Formulas",
        "",
        "| quantity | formula | source |",
        "|---|---|---|",
        "| depreciation / yr | capex ÷ years (straight line, no salvage) | — |",
        "| GPU-server power | accelerators: 0.10 × TDP idle, 0.70 × TDP at load; host max = 0.82 × GPU TDP (system factor 10.2 / 5.6) | DGX H100 10.2 kW max, typical 6.5–8.5 kW |",
        "| average kW | idle + (load − idle) × utilization | — |",
        "| energy / yr | average kW × 8,760 h × PUE × price per kWh | facts.md §4c, §4d |",
        "| staff / yr | FTE × salary | seed §四 (0.5 × ¥300,000) |",
        "| maintenance / yr | pct × capex (default 10 %, unconfirmed) | DGX support ≈ 20 %/yr as a ceiling |",
        "| cost per 1M output tokens | total / yr ÷ (output tok/s × utilization × 31.536 M s ÷ 1e6) | performance model or `--throughput` |",
        "| API per 1M output tokens | output price + input_len/output_len × input price | facts.md §4a timeline (`--api-date`) |",
        "| break-even / day | (fixed / 365) ÷ (API − energy per 1M) | — |",
        "| cold start | weights ÷ min(drives × per-drive rate, page-cache cap for mmap, host link) | facts.md §2c |",
        "| cooling | ≤ 15 kW/rack air; ≤ 30 contained air / rear door; ≤ 100 direct-to-chip liquid; above: facility liquid | estimators/power.py |",
        "",
    ]
    # ---- seed table
    t = seed_table()
    L += [
        "## The seed article's cost table, reproduced from its own inputs",
        "",
        "| component | spec | unit price (CNY) | qty | subtotal (CNY) |",
        "|---|---|---:|---:|---:|",
    ]
    for s in SEED_BOM:
        L.append(f"| {s.item} | {s.spec} | {s.unit_price:,.0f} | {s.qty} | {s.subtotal:,.0f} |")
    L += [
        f"| **hardware total** | | | | **{t.bom_total:,.0f}** |",
        "",
        f"- electricity: {SEED_KWH_PER_YEAR:,.0f} kWh × {SEED_PRICE_PER_KWH} CNY = **{t.electricity:,.0f} CNY/yr** "
        f"(= {t.implied_kw:.2f} kW around the clock: the eight GPUs' 5.6 kW TDP, no host, no PUE)",
        f"- staff: {SEED_FTE} FTE × {SEED_SALARY:,.0f} = **{t.staff:,.0f} CNY/yr**",
        f"- depreciation: {t.bom_total:,.0f} ÷ 3 years = **{t.depreciation:,.0f} CNY/yr**",
        "",
        "`tests/test_seed_cost_table.py` checks these numbers exactly.",
        "",
    ]
    # ---- corrections
    cat = load_catalog()
    fp16 = build_cost(
        model="deepseek-r1",
        weights="fp16",
        accelerator="h100-sxm",
        count=8,
        concurrency=16,
        currency="CNY",
        throughput=1.0,
        opts=CostOptions(region="seed", utilization=1.0),
    )
    h100_w = cat.accelerator("h100-sxm").tdp_w.value
    cny = PriceBook.build(load_prices(), "CNY")
    pue = cny.pue(cny.catalog.defaults.pue).value
    pw = gpu_server_power(h100_w, 8, 1)
    it_year = annual_energy(pw.load_kw, 1.0, SEED_PRICE_PER_KWH)
    full_year = annual_energy(pw.load_kw, pue, SEED_PRICE_PER_KWH)
    L += [
        "## What the table gets wrong, corrected",
        "",
        f"1. **FP16 R1 does not fit 8× H100**: {fp16['fit_reason']}. The article's own configuration cannot run the model.",
        f"2. **Whole-server power, not GPU-only**: 8 × {h100_w:,.0f} W = {8 * h100_w / 1000:.1f} kW is the GPUs alone. A DGX H100 is rated "
        f"{pw.max_kw:.1f} kW max; this tool models {pw.idle_kw:.2f} kW idle and {pw.load_kw:.2f} kW at load "
        f"(DGX typical 6.5–8.5 kW). At 100 % load that is {it_year.kwh_per_year:,.0f} kWh/yr of IT energy, "
        f"× PUE {pue:g} (facts.md §4d) = {full_year.kwh_per_year:,.0f} kWh/yr, "
        f"{full_year.cost_per_year:,.0f} CNY at the article's {SEED_PRICE_PER_KWH:g} CNY/kWh (vs its 39,536).",
        f"3. **Cooling**: one 8-GPU server at {pw.max_kw:.1f} kW is within standard air cooling (≤ 15 kW per rack); "
        "the DGX H100 is an air-cooled product. Liquid cooling starts to matter at ≈ 30 kW per rack (3+ such servers).",
        "4. **A configuration that runs R1**: FP8 (R1's native format) on 8× H200 or 16× H100 (2 nodes). Priced with this "
        f"catalog (CNY at {cny.fx:g} CNY/USD, unconfirmed FX), the article's {SEED_PRICE_PER_KWH:g} CNY/kWh and staff, PUE {pue:g}, 3-year depreciation, "
        "busy 50 % of the time at 16 concurrent requests:",
        "",
    ]
    cols = []
    for label, kw in (
        ("FP8, 8× H200", dict(accelerator="h200-sxm", count=8, nodes=1)),
        ("FP8, 16× H100 (2 nodes)", dict(accelerator="h100-sxm", count=8, nodes=2)),
    ):
        r = build_cost(
            model="deepseek-r1",
            weights="fp8",
            currency="CNY",
            concurrency=16,
            opts=CostOptions(region="seed", utilization=0.5),
            **kw,
        )
        cols.append((label, r))
    L += [
        "| | seed article (FP16, 8× H100) | " + " | ".join(c[0] for c in cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
    rows = [
        ("runs R1?", "no (does not fit)", [("yes" if r["fits"] else "no") for _, r in cols]),
        ("capex (CNY)", f"{t.bom_total:,.0f}", [f0(r["capex"]) for _, r in cols]),
        (
            "power idle / load / max (kW)",
            "5.6 (GPUs only)",
            [
                f"{r['power_kw']['idle']:.1f} / {r['power_kw']['load']:.1f} / {r['power_kw']['max']:.1f}"
                for _, r in cols
            ],
        ),
        ("energy (kWh/yr)", f"{SEED_KWH_PER_YEAR:,.0f}", [f0(r["energy_kwh_per_year"]) for _, r in cols]),
        ("electricity (CNY/yr)", f"{t.electricity:,.0f}", [f0(r["annual"]["energy"]) for _, r in cols]),
        ("staff (CNY/yr)", f"{t.staff:,.0f}", [f0(r["annual"]["staff"]) for _, r in cols]),
        ("maintenance (CNY/yr)", "not counted", [f0(r["annual"]["maintenance"]) for _, r in cols]),
        ("depreciation (CNY/yr)", f"{t.depreciation:,.0f}", [f0(r["annual"]["depreciation"]) for _, r in cols]),
        (
            "total (CNY/yr)",
            f"{t.electricity + t.staff + t.depreciation:,.0f}",
            [f0(r["annual"]["total"]) for _, r in cols],
        ),
        ("cooling", "liquid (claimed necessary)", [r["cooling"]["kind"] for _, r in cols]),
        ("cold start (s)", "—", [f0(r["storage_load"]["seconds"]) if r["storage_load"] else "—" for _, r in cols]),
        ("output tok/s (perf model, 16 concurrent)", "—", [f0(r["throughput_output_tok_s"]) for _, r in cols]),
        ("cost per 1M output tokens (CNY)", "—", [f2(r["cost_per_mtok_output"]) for _, r in cols]),
        ("DeepSeek API, same workload (CNY per 1M output)", "—", [f2(r["api_cost_per_mtok_output"]) for _, r in cols]),
    ]
    for name, seed, vals in rows:
        L.append(f"| {name} | {seed} | " + " | ".join(vals) + " |")
    L += [
        "",
        "BOM lines of the 8× H200 column (prices and sources from prices.toml):",
        "",
        "| item | spec | unit (CNY) | qty | subtotal | label |",
        "|---|---|---:|---:|---:|---|",
    ]
    for b in cols[0][1]["bom"]:
        L.append(
            f"| {b['item']} | {b['spec']} | {b['unit_price']:,.0f} | {b['qty']:g} | {b['subtotal']:,.0f} | {b['label']} |"
        )
    # ---- hospital
    book = PriceBook.build(load_prices(), "CNY")
    spec = load_model_spec("deepseek-r1")
    d = Demand.build(**HOSPITAL)
    res = recommend(cat, "deepseek-r1", spec, d, book, CostOptions(region="cn-avg"))
    opts = res["options"]
    best = next((o for o in opts if o["feasible"]), None)
    api = next(o for o in opts if o["kind"] == "api")
    L += [
        "",
        "## Worked example: DeepSeek-R1 for a 200-person hospital, data on premises",
        "",
        "Assumptions (stated, not measured): 200 staff, ≈ 120 daily users × 10 questions = "
        f"**{d.requests_per_day:,.0f} requests/day**, {d.input_len:,} tokens in (note + question) and "
        f"{d.output_len:,} out (reasoning + answer) = {d.output_tokens_per_day:,.0f} output tokens/day; "
        f"peak {d.peak_concurrency} concurrent; SLO TTFT ≤ {d.ttft_ms:g} ms, TPOT ≤ {d.tpot_ms:g} ms; "
        "patient data must stay on premises; full-quality R1 (FP8 or better, `--max-quality-rank 1`); "
        "China average industrial electricity (facts.md §4c, ≈ 0.63 CNY/kWh), PUE 1.56, 0.5 FTE × 300,000 CNY, "
        "10 %/yr maintenance, 3-year depreciation.",
        "",
        "```",
        "dsdeploy recommend --requests-per-day 1200 --input-len 1500 --output-len 1000 --peak-concurrency 16 \\",
        "  --ttft-ms 3000 --tpot-ms 100 --on-prem --max-quality-rank 1 --currency CNY --region cn-avg",
        "```",
        "",
        "| # | kind | option | CNY per 1M output | CNY per year | capex (CNY) | TTFT ms | TPOT ms | allowed |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    f1 = lambda x: "—" if x is None else f"{x:,.1f}"  # noqa: E731
    for o in opts[:8] + [o for o in opts[8:] if o["kind"] != "buy" or "h200-sxm" in o["label"]]:
        L.append(
            f"| {o['rank']} | {o['kind']} | {o['label']} | {f2(o['cost_per_mtok_output'])} | {f0(o['annual'])} | "
            f"{f0(o['capex'])} | {f0(o['ttft_ms'])} | {f1(o['tpot_ms'])} | {'yes' if o['feasible'] else 'no'} |"
        )
    if best:
        ratio = best["annual"] / api["annual"] if api["annual"] else float("inf")
        L += [
            "",
            f"**Recommended on premises: {best['label']}** — capex {f0(best['capex'])} CNY, "
            f"{f0(best['annual'])} CNY/yr, i.e. {f2(best['cost_per_mtok_output'])} CNY per 1M output tokens at this "
            f"volume ({best['utilization']:.1%} busy).",
            "",
        ]
        L += [f"- {r}" for r in best["reasons"]]
        L += [
            "",
            f"**Against the API**: the same {d.output_tokens_per_day:,.0f} output tokens/day on the DeepSeek API "
            f"(deepseek-reasoner, latest prices) cost {f0(api['annual'])} CNY/yr "
            f"({f2(api['cost_per_mtok_output'])} CNY per 1M output tokens incl. the prompts) — "
            f"owning costs ≈ {ratio:,.0f}× as much. At this volume the hardware is idle most of the time; the premium "
            "buys data sovereignty, not cheaper tokens. The API is ruled out only by the on-premises requirement.",
            "",
            "What the article's own alternatives mean here:",
            "",
        ]
        for o in opts:
            if o["kind"] == "article":
                L.append(
                    f"- **{o['label']}** — {f2(o['cost_per_mtok_output'])} CNY per 1M output, {f0(o['annual'])} CNY/yr"
                    f"{'' if o['feasible'] else ' (not allowed here)'}: {o['reasons'][0]}"
                )
    L += [
        "",
        "## Unconfirmed inputs",
        "",
        "Every BOM line labelled `unconfirmed` rests on an estimate (server hosts, DRAM and NVMe in the 2025–26 shortage, "
        "NICs, switches, liquid cooling, maintenance %, staff salary, CNY/USD rate, several accelerator prices); "
        "`dsdeploy cost --json` lists them under `unconfirmed` with their sources. Power fractions (idle 10 % and load 70 % "
        "of TDP) are estimates anchored on the DGX H100's 10.2 kW max and 6.5–8.5 kW typical draw. Throughput comes from "
        "the performance model (label `roofline` until calibrated); pass `--throughput` to use a measured figure.",
        "",
    ]
    return "\n".join(L)
