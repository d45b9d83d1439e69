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
from typing import Literal

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.buying import Market, load_buying
from dsdeploy.catalog.prices import PriceBook
from dsdeploy.errors import UserError
from dsdeploy.estimators import cost as C
from dsdeploy.estimators.memory import Workload
from dsdeploy.planner.bom import CostOptions, api_model_for, cost_report, predict_throughput
from dsdeploy.planner.demand import MAX_BUSY, Demand, copies_and_utilization  # noqa: F401
from dsdeploy.planner.plan import Evaluated, _try, accelerator_of, evaluate, format_runs_on, min_count, verdict
from dsdeploy.specs.deployment import default_engine
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
SMALL_HW = ("rtx-4090", "rtx-5090", "l40s", "a100-sxm-80g", "h100-sxm", "h200-sxm", "rtx-4090d", "l20", "h20")


OptionKind = Literal["buy", "rent", "api", "hybrid", "article"]


@dataclass
class Option:
    kind: OptionKind
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
    verdict: str | None = None  # local options: "fits" the peak, or "queues" (holds fewer at once)
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
            "verdict": self.verdict,
            "reasons": self.reasons,
        }


def _market(d: Demand) -> Market | None:
    return load_buying().get_market(d.market) if d.market else None


def with_default_slos(d: Demand) -> tuple[Demand, dict[str, str]]:
    """The demand with a TTFT and TPOT SLO: the stated ones, else the catalog's default (buying.toml
    [slo]: MLPerf Inference's DeepSeek-R1 server scenario), and where each came from."""
    slo = load_buying().slo
    src = {
        "ttft_ms": "stated (--ttft-ms)" if d.ttft_ms is not None else f"default: {slo.name}, {slo.ttft_ms.cite()}",
        "tpot_ms": "stated (--tpot-ms)" if d.tpot_ms is not None else f"default: {slo.name}, {slo.tpot_ms.cite()}",
    }
    ttft = d.ttft_ms if d.ttft_ms is not None else slo.ttft_ms.value
    tpot = d.tpot_ms if d.tpot_ms is not None else slo.tpot_ms.value
    return replace(d, ttft_ms=ttft, tpot_ms=tpot), src


def _slo(d: Demand, ttft: float, tpot: float) -> tuple[bool, list[str]]:
    why, ok = [], True
    if d.ttft_ms is not None and ttft > d.ttft_ms:
        ok = False
        why.append(f"TTFT {ttft:,.0f} ms > SLO {d.ttft_ms:g} ms")
    if d.tpot_ms is not None and tpot > d.tpot_ms:
        ok = False
        why.append(f"TPOT {tpot:,.1f} ms > SLO {d.tpot_ms:g} ms")
    return ok, why


def _queued_ttft(perf, running: int, peak: int) -> tuple[float, list[str]]:
    """TTFT of the last request at the peak when only `running` fit at once: it waits for
    ⌈peak / running⌉ − 1 earlier waves, each one request's end-to-end time (derived: FIFO admission
    as KV frees; vLLM/SGLang admit by free KV blocks)."""
    waves = math.ceil(peak / max(1, running)) - 1
    ttft = perf.ttft_ms + waves * perf.e2e_ms
    return ttft, [
        f"queues: the KV cache holds {running} of the peak's {peak} requests at once; the last waits "
        f"{waves} × {perf.e2e_ms:,.0f} ms (one request end to end): TTFT up to {ttft:,.0f} ms"
    ]


def _buying_notes(dep, d: Demand, book: PriceBook) -> tuple[bool, list[str], str]:
    """(whether the accelerator can be bought in `d.market`, notes on its price, unit and market
    status, the mark a ranked row shows when the part is not plainly on sale there: its status
    (licensed, case-by-case) and whether it is UNCONFIRMED; "" otherwise)."""
    notes: list[str] = []
    acc = dep.accelerator.id if dep.accelerator is not None else None
    if acc is None:
        return True, notes, ""
    ap = book.accelerator(acc)
    if ap.purchase.label == "unconfirmed":
        notes.append(f"{acc} purchase price is an UNCONFIRMED estimate ({ap.purchase.source})")
    if ap.sold_as is not None:
        u = ap.sold_as
        notes.append(f"sold only as whole units: {u.name}, {u.cooling}-cooled ({u.cooling_source})")
    market = _market(d)
    if market is None:
        return True, notes, ""
    st = market.status(acc)
    mark = ", ".join(([st.status] if st.status != "sold" else []) + (["UNCONFIRMED"] if st.unconfirmed else []))
    if not market.buyable(acc):
        return False, notes + [market.why_not(d.market or "", acc)], mark
    notes.append(
        f"{acc} in {d.market}: {st.status} ({st.date}; {st.source})" + (" UNCONFIRMED" if st.unconfirmed else "")
    )
    return True, notes, mark


def cost_local(
    catalog: Catalog,
    ev: Evaluated,
    d: Demand,
    book: PriceBook,
    opts: CostOptions,
    label: str,
    kind: OptionKind = "buy",
    calibration=None,
    share: float = 1.0,
    concurrency: int | None = None,
) -> Option | None:
    """Cost a deployment carrying `share` of the demand; with a market (`d.market`), one whose
    accelerator is not sold there is not feasible."""
    dep = ev.deployment
    peak = concurrency or d.peak_concurrency
    v = verdict(ev.memory)
    conc = min(peak, ev.memory.max_concurrency) if v == "queues" else peak  # what runs at once
    wl = Workload(d.input_len, d.output_len, conc)
    perf = predict_throughput(dep, wl, calibration)
    if perf is None:
        raise UserError("recommend needs the performance model (dsdeploy.estimators.performance)")
    if perf.output_tok_s_total <= 0:
        return None
    need = d.avg_output_tok_s * share
    copies, util = copies_and_utilization(need, perf.output_tok_s_total)
    rep = cost_report(catalog, dep, wl, ev.memory, book, replace(opts, utilization=util), perf=perf)
    ttft, queue_note = _queued_ttft(perf, conc, peak) if v == "queues" else (perf.ttft_ms, [])
    ok, why = _slo(d, ttft, perf.tpot_ms)
    capex = rep["capex"] * copies
    annual = rep["annual"]["total"] * copies
    label = _label_for_copies(label, ev, copies)
    sellable, buying, mark = _buying_notes(dep, d, book)
    if mark:
        label = f"[{mark}] {label}"
    reasons = (
        [
            f"{dep.describe()}"
            + (f" × {copies} copies (capex and running costs are for all {copies})" if copies > 1 else ""),
            f"TTFT {perf.ttft_ms:,.0f} ms, TPOT {perf.tpot_ms:,.1f} ms at {conc} concurrent ({perf.label})",
            f"{util:.1%} busy; capex {capex:,.0f}, {rep['annual']['total'] * copies:,.0f}/yr "
            f"(energy {rep['annual']['energy'] * copies:,.0f}, {rep['power_kw']['load'] * copies:.1f} kW at load)",
            f"cooling: {rep['cooling']['guidance']}",
        ]
        + queue_note
        + why
    )
    if d.budget is not None and capex > d.budget:
        reasons.append(f"capex {capex:,.0f} exceeds the budget {d.budget:,.0f}")
    reasons += buying
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
        ttft_ms=ttft,
        tpot_ms=perf.tpot_ms,
        meets_slo=ok,
        feasible=ok and sellable and (d.budget is None or capex <= d.budget),
        verdict=v,
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


def _unified_candidate(
    catalog: Catalog, model_id: str, spec: ModelSpec, wl: Workload, acc, fmt, kv: str
) -> tuple[Evaluated, str] | None:
    """The fewest unified-memory computers (1, 2 or 4; several via exo) that hold the model."""
    if not format_runs_on(catalog, fmt.id, acc.id, "unified"):
        return None
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
            return ev, f"buy {n}× {acc.id}, {fmt.id}"
    return None


def _label_for_copies(label: str, ev: Evaluated, copies: int) -> str:
    """One machine count for the price shown: 'buy 1× X' at 2 copies becomes 'buy 2× X (2 copies of 1×)'."""
    if copies <= 1 or not label.startswith("buy "):
        return label
    n = ev.deployment.devices
    head, sep, rest = label[4:].partition(", ")
    if head.startswith(f"{n}× ") and "+" not in head:
        acc = head[len(f"{n}× ") :]
        return f"buy {n * copies}× {acc} ({copies} copies of {n}×){sep}{rest}"
    return f"buy {copies} × ({head}){sep}{rest}"


def _queueing(
    catalog: Catalog, model_id: str, spec: ModelSpec, fmt: str, kv: str, wl: Workload, acc: str
) -> Evaluated | None:
    """When no layout holds the whole peak's KV cache: the fewest GPUs that hold one request, evaluated at
    the peak, so its verdict is 'queues' (the rest wait), not dropped as if the model did not fit."""
    one = min_count(catalog, model_id, spec, fmt, kv, Workload(wl.input_len, wl.output_len, 1), acc)
    if one is None:
        return None
    at_peak = evaluate(one.deployment, wl)
    return at_peak if verdict(at_peak.memory) == "queues" else None


def _unit_candidate(
    catalog: Catalog, model_id: str, spec: ModelSpec, wl: Workload, ev: Evaluated, fmt, kv: str, unit_gpus: int
) -> tuple[Evaluated, str] | None:
    """A part sold only as a unit of `unit_gpus` (NVL72 rack): the whole unit, running as many replicas
    of the smallest instance that fits (TP within the instance) as the unit holds."""
    need = ev.deployment.devices
    tp = next((t for t in range(need, unit_gpus + 1) if unit_gpus % t == 0), unit_gpus)
    acc = accelerator_of(ev).id
    whole = _try(
        catalog,
        model_id,
        spec,
        wl,
        weights=fmt.id,
        kv_dtype=kv,
        accelerator=acc,
        count=unit_gpus,
        placement="gpu",
        tp=tp,
        engine=ev.deployment.engine.id,
    )
    if whole is None or not whole.memory.fits:
        return None
    return (
        whole,
        f"buy 1× {acc} rack ({unit_gpus} GPUs: {unit_gpus // tp} replicas of {tp}), {fmt.id}, {whole.deployment.engine.id}",
    )


def _gpu_candidate(
    catalog: Catalog, model_id: str, spec: ModelSpec, wl: Workload, acc, fmt, kv: str, unit_gpus: int | None = None
) -> tuple[Evaluated, str] | None:
    ev = min_count(catalog, model_id, spec, fmt.id, kv, wl, acc.id) or _queueing(
        catalog, model_id, spec, fmt.id, kv, wl, acc.id
    )
    if ev is None:
        return None
    if unit_gpus is not None:
        return _unit_candidate(catalog, model_id, spec, wl, ev, fmt, kv, unit_gpus)
    dd = ev.deployment
    nodes = f" ({dd.nodes} nodes)" if dd.nodes > 1 else ""
    queues = "" if ev.memory.fits else f", queues above {ev.memory.max_concurrency} concurrent"
    return ev, f"buy {dd.devices}× {acc.id}{nodes}, {fmt.id}, {dd.engine.id}{queues}"


def _hybrid_candidates(
    catalog: Catalog, model_id: str, spec: ModelSpec, d: Demand, wl: Workload, kv: str
) -> list[tuple[Evaluated, str]]:
    """The CPU-side boxes (HYBRID_CPU_BOXES) that hold the model."""
    out = []
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


def _buy_candidates(
    catalog: Catalog, model_id: str, spec: ModelSpec, d: Demand, kv: str, units: dict[str, int] | None = None
) -> list[tuple[Evaluated, str]]:
    """`units`: accelerator id → GPUs per sellable unit, for parts sold only whole (prices.toml sold_as)."""
    wl = Workload(d.input_len, d.output_len, d.peak_concurrency)
    out = []
    units = units or {}
    for acc in catalog.accelerators.values():
        if "not stated" in acc.name:
            continue  # generic ids (form factor unknown) duplicate a specific entry
        for fmt in catalog.formats.values():
            if fmt.quality_rank > d.max_quality_rank:
                continue
            if acc.unified_memory:
                cand = _unified_candidate(catalog, model_id, spec, wl, acc, fmt, kv)
            else:
                cand = _gpu_candidate(catalog, model_id, spec, wl, acc, fmt, kv, units.get(acc.id))
            if cand is not None:
                out.append(cand)
    return out + _hybrid_candidates(catalog, model_id, spec, d, wl, kv)


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
            # the cheapest that is feasible (meets the SLOs, can be bought), else the cheapest: the article's
            # alternative is shown with what it implies either way
            if o is not None and (best is None or (not o.feasible, o.annual) < (not best.feasible, best.annual)):
                best = o
    return best


@dataclass(frozen=True)
class _Ask:
    """What every option of one `recommend` call is priced against."""

    catalog: Catalog
    model_id: str
    spec: ModelSpec
    d: Demand
    book: PriceBook
    opts: CostOptions
    kv: str
    calibration: object
    api_model: str
    api_date: str | None
    api_cache_hit: float


def _costed_buys(a: _Ask) -> list[Option]:
    buys: list[Option] = []
    units = {k: p.sold_as.gpus for k, p in a.book.catalog.accelerator.items() if p.sold_as is not None}
    for ev, label in _buy_candidates(a.catalog, a.model_id, a.spec, a.d, a.kv, units):
        try:
            o = cost_local(a.catalog, ev, a.d, a.book, a.opts, label, calibration=a.calibration)
        except UserError:
            continue  # no price for this hardware
        if o is not None:
            buys.append(o)
    buys.sort(key=lambda o: (not o.feasible, o.annual))
    return buys


def _spanning(buys: list[Option]) -> list[Option]:
    """The cheapest option per accelerator (+ engine/placement) and bit width, so the list spans the catalog."""
    seen, kept = set(), []
    for o in buys:
        assert o.ev is not None  # cost_local's options carry their evaluation
        dep = o.ev.deployment
        w = dep.weights
        low_bit = sum(s.value for s in w.bpw.values()) / len(w.bpw) < 7.5
        host = dep.cpu.id if dep.cpu is not None and dep.placement != "gpu" else None
        key = (dep.accelerator.id if dep.accelerator else None, dep.placement, host, low_bit)
        if key in seen:
            continue
        seen.add(key)
        kept.append(o)
    return kept


def _api_options(a: _Ask) -> list[Option]:
    out = []
    for prov in a.book.catalog.api:
        date = a.api_date if prov == a.book.catalog.defaults.api else None
        try:
            out.append(api_option(a.d, a.book, prov, a.api_model, date, a.api_cache_hit))
        except UserError:
            continue
    return out


def _hybrid_option(a: _Ask, best_local: Option | None) -> Option | None:
    """The cheapest local option sized for (1 − overflow) of the peak, the rest to the API."""
    d = a.d
    if best_local is None or d.overflow_share <= 0:
        return None
    local_conc = max(1, math.ceil(d.peak_concurrency * (1 - d.overflow_share)))
    ev = _ev_for(a.catalog, best_local, a.spec, d, a.kv, local_conc)
    if ev is None:
        return None
    base = cost_local(
        a.catalog,
        ev,
        d,
        a.book,
        a.opts,
        "",
        calibration=a.calibration,
        share=1 - d.overflow_share,
        concurrency=local_conc,
    )
    if base is None:
        return None
    api = api_option(
        d, a.book, a.book.catalog.defaults.api, a.api_model, a.api_date, a.api_cache_hit, share=d.overflow_share
    )
    annual = base.annual + api.annual
    per = annual / (d.output_tokens_per_day * 365 / 1e6)
    reasons = [
        f"local: {base.deployment}, {1 - d.overflow_share:.0%} of tokens",
        f"API overflow at peaks: {d.overflow_share:.0%} of tokens ({api.annual:,.0f}/yr; --overflow-share)",
    ] + base.reasons[1:3]
    if d.on_prem:
        reasons.append("overflow leaves the premises (--on-prem)")
    return Option(
        kind="hybrid",
        label=f"hybrid: {base.deployment} + API overflow",
        model=a.model_id,
        cost_per_mtok_output=per,
        annual=annual,
        capex=base.capex,
        ttft_ms=base.ttft_ms,
        tpot_ms=base.tpot_ms,
        meets_slo=base.meets_slo,
        feasible=base.feasible and not d.on_prem,
        reasons=reasons,
        deployment=base.deployment,
        utilization=base.utilization,
        quality=base.quality,
        cost_per_mtok_blended=per / ((d.input_len + d.output_len) / d.output_len),
    )


def _keep_on_prem(options: list[Option], d: Demand) -> None:
    if not d.on_prem:
        return
    for o in options:
        if o.kind == "rent" and o.feasible:
            o.feasible = False
            o.reasons.append("rented cloud GPUs: data leaves the premises (--on-prem)")


def _ranked(options: list[Option], top: int) -> list[Option]:
    """Feasible first, cheapest first; the top `top`, the best of each kind, then the article's."""
    kind_order = {"buy": 0, "hybrid": 1, "rent": 2, "api": 3, "article": 4}
    options.sort(key=lambda o: (not o.feasible, o.cost_per_mtok_output, kind_order[o.kind]))
    ranked = [o for o in options if o.kind != "article"][:top]
    for kind in ("buy", "rent", "api", "hybrid"):  # always show the best of each kind
        best = next((o for o in options if o.kind == kind), None)
        if best is not None and best not in ranked:
            ranked.append(best)
    return ranked + [o for o in options if o.kind == "article"]


def _demand_dict(d: Demand) -> dict:
    return {
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
    }


def _market_dict(d: Demand) -> dict | None:
    m = _market(d)
    if m is None:
        return None
    return {"id": d.market, "name": m.name, "rules": m.rules, "date": m.date, "source": m.source}


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
    _market(d)  # an unknown market id is bad input: say so before any work
    d, slo_source = with_default_slos(d)
    a = _Ask(
        catalog, model_id, spec, d, book, opts, kv_dtype, calibration, api_model_for(model_id), api_date, api_cache_hit
    )
    buys = _costed_buys(a)
    kept = _spanning(buys)
    options: list[Option] = list(kept)
    # rent the same GPUs (top buy options that have a rental price)
    for o in [b for b in kept if b.feasible][:12]:
        rent = _rent_option(catalog, o, d, book, opts, buys_by_label={b.label: b for b in buys})
        if rent is not None:
            options.append(rent)
    options += _api_options(a)
    best_local = next((o for o in kept if o.feasible), None)
    hybrid = _hybrid_option(a, best_local)
    if hybrid is not None:
        options.append(hybrid)
    options += article_options(catalog, model_id, spec, d, book, opts, kv_dtype, calibration, best_local)
    _keep_on_prem(options, d)
    shown = _ranked(options, top)
    return {
        "model": model_id,
        "currency": book.currency,
        "demand": _demand_dict(d) | {"slo_source": slo_source, "market": _market_dict(d)},
        "options": [dict(rank=i + 1, **o.to_dict()) for i, o in enumerate(shown)],
        "considered": len(buys) + len(options) - len(kept),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }


def _ev_for(catalog, o: Option, spec, d: Demand, kv: str, conc: int) -> Evaluated | None:
    """The hardware of option `o`, re-sized for a lower concurrency (the hybrid's local part)."""
    assert o.ev is not None  # buy options carry their evaluation
    dep = o.ev.deployment
    wl = Workload(d.input_len, d.output_len, max(1, conc))
    if dep.placement == "gpu" and dep.accelerator is not None:
        return (
            min_count(catalog, o.model, spec, dep.weights.id, kv, wl, dep.accelerator.id, engine=dep.engine.id) or o.ev
        )
    return o.ev


def _rent_option(catalog, o: Option, d: Demand, book: PriceBook, opts: CostOptions, buys_by_label) -> Option | None:
    """The same GPUs rented on demand, 24/7: devices × copies GPU-hours (GPU placement only)."""
    dep = o.ev.deployment if o.ev is not None else None
    if dep is None or dep.accelerator is None or dep.placement != "gpu":
        return None
    acc_id = dep.accelerator.id
    ap = book.catalog.accelerator.get(acc_id)
    if ap is None or ap.rent_hour is None:
        return None
    n = dep.devices * o.copies
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
            o.label = f"article: distilled model {mid} on {(o.deployment or '').split(' on ', 1)[-1]}"
            o.reasons.insert(
                0, "a different, smaller dense model distilled from R1: weaker than R1 (quality is not modelled)"
            )
            out.append(o)
    # 3. smaller LoRA-tuned model
    if LORA_BASE in catalog.models:
        o = _cheapest_small(catalog, LORA_BASE, d, book, opts, kv, calibration, "")
        if o:
            o.label = f"article: LoRA-tuned smaller model ({LORA_BASE} + adapter) on {(o.deployment or '').split(' on ', 1)[-1]}"
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
    market="cn",
)


def cost_doc() -> str:
    """docs/cost.md (moved to planner/costdoc.py; kept here for its callers)."""
    from dsdeploy.planner.costdoc import cost_doc as _cost_doc

    return _cost_doc()
