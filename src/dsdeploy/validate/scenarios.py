"""Read measurement files in the scenario schema (data/reference/measurements/SCHEMA.md) and predict each row's metric.

Columns are matched by name; unknown extra columns are ignored. A row that cannot be predicted
gets a reason instead (an unknown id, a missing field). Where a row lacks its workload, documented
defaults are used and listed in the row's `defaults` field.

Schema v2 (SCHEMA.md) adds optional columns, all of which older files may lack:
- `engine_version`, `date`: the engine build and the run's date; the date's quarter is the
  release epoch whose efficiency the row is predicted (and fitted) with;
- `role`: `aggregated` (default), `prefill` or `decode` (one side of a PD-disaggregated system,
  predicted for that side alone);
- `arrival`: how the benchmark client sent requests: `steady` (default), `waves`, `burst` or
  `rate` (with a `request_rate` column, requests/s). A pure burst is wrong for InferenceX-style
  clients: IX0073 (32 × 8k prompts on 8× H200) measured a 372 ms TTFT, while a burst of 32 × 8,192
  tokens needs ≥ 0.8 s for the mean request even at FP8 peak. `waves` (requests in step, arrivals
  spread over 20 % of a cycle) fits InferenceX's TTFT at concurrency > 64 better, but defaulting the
  InferenceX rows to it raised leave-one-source-out error on data/reference/measurements/public.csv from 29.4 % to 36.4 %
  (docs/accuracy.md), so `steady` stays the default.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsdeploy.catalog import Catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators.calibration import Calibration, epoch_of
from dsdeploy.estimators.memory import Workload, plan_memory
from dsdeploy.estimators.performance import (
    ARRIVALS,
    ROLES,
    group_params,
    hw_class,
    predict,
    prefill_time,
    serving_capacity_tokens,
)
from dsdeploy.planner.options import DeploymentOptions, build
from dsdeploy.specs.deployment import Deployment, gpu_layout
from dsdeploy.specs.model import ModelSpec, load_model_spec

REQUIRED = ("id", "model", "weights", "placement", "metric", "value")
METRICS = (
    "decode_tok_s_per_user",
    "output_tok_s_total",
    "output_tok_s_per_gpu",
    "prefill_tok_s",
    "tpot_ms",
    "ttft_ms",
    "e2e_ms",
)
DEFAULT_ARRIVAL = "steady"
BAND_CONFIDENCE = 0.8  # each row's band covers this share of held-out errors (fit.py sizes it)
DEFAULT_INPUT = 512
DEFAULT_OUTPUT = 256


@dataclass
class Row:
    raw: dict

    def get(self, k: str) -> str:
        return (self.raw.get(k) or "").strip()

    def int_or_none(self, k: str) -> int | None:
        v = self.get(k)
        if v == "":
            return None
        try:
            return int(float(v))
        except ValueError:
            raise UserError(f"row {self.get('id')}: column '{k}' must be an integer, got {v!r}") from None

    @property
    def id(self) -> str:
        return self.get("id")

    @property
    def epoch(self) -> str:
        """Release epoch of the engine build (quarter of `date`); '' when the row has no date."""
        return epoch_of(self.get("date"))

    @property
    def role(self) -> str:
        r = self.get("role") or "aggregated"
        if r not in ROLES:
            raise UserError(f"row {self.id}: role must be one of {', '.join(ROLES)}, got {r!r}")
        return r

    @property
    def arrival(self) -> str:
        a = self.get("arrival") or DEFAULT_ARRIVAL
        if a not in ARRIVALS:
            raise UserError(f"row {self.id}: arrival must be one of {', '.join(ARRIVALS)}, got {a!r}")
        return a

    @property
    def request_rate(self) -> float | None:
        v = self.get("request_rate")
        if not v:
            return None
        try:
            return float(v)
        except ValueError:
            raise UserError(f"row {self.id}: request_rate must be a number (requests/s), got {v!r}") from None

    @property
    def source_key(self) -> str:
        s = self.get("source")
        for sep in (" (", " ;", ","):
            s = s.split(sep)[0]
        return s.strip()


@dataclass
class RowResult:
    id: str
    metric: str
    measured: float
    predicted: float | None
    ape: float | None
    reason: str
    placement: str
    engine: str
    group: str = ""
    source: str = ""
    defaults: list[str] = field(default_factory=list)
    scope: str = ""
    ambiguity: str = ""
    band: float | None = None  # relative half-width of the p80 interval (BAND_CONFIDENCE)
    role: str = "aggregated"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "metric": self.metric,
            "measured": self.measured,
            "predicted": self.predicted,
            "ape": self.ape,
            "reason": self.reason,
            "placement": self.placement,
            "engine": self.engine,
            "group": self.group,
            "defaults": self.defaults,
            "scope": self.scope,
            "ambiguity": self.ambiguity,
            "band": self.band,
            "band_confidence": BAND_CONFIDENCE,
            "role": self.role,
        }


def read_scenarios(path: str | Path) -> list[Row]:
    p = Path(path)
    if not p.exists():
        raise UserError(f"measurement file not found: {p}")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise UserError(f"{p}: empty file (expected a header row with {', '.join(REQUIRED)})")
            missing = [c for c in REQUIRED if c not in reader.fieldnames]
            if missing:
                raise UserError(
                    f"{p}: missing column(s) {', '.join(missing)} (see the scenario schema, data/reference/measurements/SCHEMA.md)"
                )
            return [Row(r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {p} as a UTF-8 CSV file: {exc}") from None


_spec_cache: dict[str, ModelSpec] = {}


def _row_parallelism(row: Row, spec: ModelSpec, placement: str) -> tuple[dict, list[str]]:
    """tp/pp/ep/dp_attention as the row states them; what it leaves out is the plan's (GPU rows:
    TP inside a node, PP across nodes; other placements: 1), as `resolve_deployment` fills it."""
    defaults: list[str] = []
    tp, pp, ep, dp = (row.int_or_none(k) for k in ("tp", "pp", "ep", "dp_attention"))
    if placement == "gpu" and tp is None and pp is None and dp is None:
        defaults.append("tp, pp: the plan's layout (TP inside a node, PP across nodes)")
    if placement == "gpu" and ep:  # a published ep beyond one stage's GPUs: sharded over the stage
        stage_tp, _ = gpu_layout(row.int_or_none("accelerators_per_node") or 1, 1, tp, pp, dp)
        ep = min(ep, stage_tp * (dp or 1))
    if ep and ep > 1 and spec.n_routed_experts % ep:
        defaults.append(f"ep={ep} uses redundant experts; modelled as experts sharded over all GPUs")
        ep = 1
    return {"tp": tp, "pp": pp, "ep": ep, "dp_attention": dp}, defaults


def _row_workload(row: Row) -> tuple[int, int, int | None, bool, list[str]]:
    """(input_len, output_len, concurrency or None, saturate, defaults): the row's workload, with
    the documented defaults where it says nothing."""
    defaults: list[str] = []
    metric = row.get("metric")
    inp, out, conc = (row.int_or_none(k) for k in ("input_len", "output_len", "concurrency"))
    if inp is None:
        inp = DEFAULT_INPUT
        defaults.append(f"input_len={DEFAULT_INPUT}")
    if out is None:
        out = 0 if metric == "prefill_tok_s" else DEFAULT_OUTPUT
        if metric != "prefill_tok_s":
            defaults.append(f"output_len={DEFAULT_OUTPUT}")
    saturate = conc is None and (
        metric in ("output_tok_s_total", "output_tok_s_per_gpu")
        or (metric == "prefill_tok_s" and row.get("prefill_basis") == "per_gpu")
    )
    if conc is None and not saturate:
        conc = 1
        if row.get("arrival") != "rate":  # open loop: the requests in flight follow from the rate
            defaults.append("concurrency=1")
    return inp, out, conc, saturate, defaults


def row_options(row: Row, spec: ModelSpec) -> tuple[DeploymentOptions, bool, list[str]]:
    """The plan options a row states (the one options → deployment path fills the rest), whether
    its throughput is a saturated peak, and the defaults that were assumed."""
    placement = row.get("placement")
    acc = row.get("accelerator") or None
    par, defaults = _row_parallelism(row, spec, placement)
    per_node = row.int_or_none("accelerators_per_node") or 0
    if acc and not per_node:
        # a measurement that names the accelerator but not how many: read as one (and reported), so a
        # row whose tp × dp needs more says so instead of being predicted for a guessed server
        per_node = 1
        defaults.append("accelerators_per_node=1")
    if not row.get("engine"):
        defaults.append("engine=default for the format")
    dram = row.get("dram") or None
    if dram and dram.split("-")[0] not in ("ddr4", "ddr5", "mrdimm", "lpddr5", "lpddr5x"):
        dram = None
    inp, out, conc, saturate, wl_defaults = _row_workload(row)
    o = DeploymentOptions(
        model=row.get("model"),
        weights=row.get("weights"),
        kv_dtype=row.get("kv_dtype") or "bf16",
        accelerator=acc or "none",
        count=per_node if acc else 0,
        nodes=row.int_or_none("nodes") or 1,
        engine=row.get("engine") or None,
        placement=placement,
        cpu=row.get("cpu") or None,
        cpu_sockets=row.int_or_none("cpu_sockets") or 1,
        dram=dram,
        dram_gb=4096.0 if placement in ("cpu", "experts-on-cpu", "layer-split") else None,
        mtp=row.get("mtp") == "1" and spec.mtp_layers > 0,
        input_len=inp,
        output_len=out,
        concurrency=conc or 1,
        **par,
    )
    return o, saturate, defaults + wl_defaults


def row_deployment(cat: Catalog, row: Row) -> tuple[Deployment, Workload, list[str]]:
    """A Deployment and Workload for a row, plus the defaults that were assumed."""
    mid = row.get("model")
    if mid not in _spec_cache:
        _spec_cache[mid] = load_model_spec(mid)
    spec = _spec_cache[mid]
    o, saturate, defaults = row_options(row, spec)
    dep = build(o, cat, (mid, spec))
    conc = o.concurrency
    if saturate:
        # aggregate throughput with no stated concurrency: a published peak, i.e. a full batch
        from dsdeploy.estimators.memory import plan_memory

        cap = plan_memory(dep, Workload(o.input_len, o.output_len, 1)).max_concurrency
        conc = max(1, min(cap, int(dep.engine.max_num_seqs.value) * dep.par.dp_attention * dep.replicas))
        defaults.append(f"concurrency={conc} (saturated: KV capacity / max_num_seqs)")
    return dep, Workload(o.input_len, o.output_len, conc), defaults


TRAY_GPUS = {"gb200": 4, "gb300": 4}  # SCHEMA.md: a GB200/GB300 NVL72 node is one compute tray of 4 GPUs
NODE_GPUS = 8  # an HGX/MI300-class server


def complete_row(row: Row) -> tuple[Row, list[str]]:
    """A GPU row whose hardware counts are empty (InferenceX's PD-disaggregated rows give only the
    decode side's parallelism) describes one instance of tp × dp_attention × pp GPUs: fill
    accelerators_per_node and nodes from it (8 per node, 4 per GB200/GB300 tray) and say so."""
    if row.get("placement") != "gpu" or row.get("accelerators_per_node") or not row.get("accelerator"):
        return row, []
    tp, dp, pp = (row.int_or_none(k) or 1 for k in ("tp", "dp_attention", "pp"))
    devices = tp * dp * pp
    if devices <= 1:
        return row, []
    per_node = min(devices, TRAY_GPUS.get(row.get("accelerator"), NODE_GPUS))
    nodes = max(1, devices // per_node)
    raw = {**row.raw, "accelerators_per_node": str(per_node), "nodes": str(nodes)}
    return Row(raw), [f"accelerators_per_node={per_node}, nodes={nodes} (one instance of tp × dp × pp)"]


def row_capacity(dep: Deployment, wl: Workload) -> int:
    """KV tokens the engine holds for this row (calibration-independent; the fit computes it once)."""
    return serving_capacity_tokens(dep, plan_memory(dep, Workload(wl.input_len, wl.output_len, 1)))


def predict_metric(
    dep: Deployment, wl: Workload, metric: str, row: Row, cal: Calibration, capacity: int | None = None
) -> float:
    """The row's metric, predicted for its role, arrival process and engine epoch."""
    epoch = row.epoch  # "" (undated) → the all-epoch group; plan passes None → the newest epoch
    if metric == "prefill_tok_s":
        p, _ = group_params(dep, cal, epoch)
        if row.get("prefill_basis") != "per_gpu":
            t, _ = prefill_time(dep, p, max(1, wl.input_len))
            return wl.input_len / t
        seqs = max(1, wl.concurrency // max(1, dep.replicas))  # per_gpu aggregate: a full batch of prompts
        t, _ = prefill_time(dep, p, max(1, wl.input_len), seqs=seqs)
        return wl.input_len * seqs * dep.replicas / t / max(1, dep.devices)
    if capacity is None:
        capacity = row_capacity(dep, wl)
    pr = predict(
        dep,
        wl,
        cal,
        arrival=row.arrival,
        role=row.role,
        epoch=epoch,
        request_rate=row.request_rate,
        capacity_tokens=capacity,
    )
    if metric == "decode_tok_s_per_user":
        if (
            dep.engine.id == "trtllm"
        ):  # TRT-LLM divides by the whole request latency (data/reference/measurements/SCHEMA.md)
            return wl.output_len / (pr.e2e_ms / 1e3) if wl.output_len else pr.decode_tok_s_per_user
        return pr.decode_tok_s_per_user
    values = {
        "output_tok_s_total": pr.output_tok_s_total,
        "output_tok_s_per_gpu": pr.output_tok_s_total / max(1, dep.devices),
        "tpot_ms": pr.tpot_ms,
        "ttft_ms": pr.ttft_ms,
        "e2e_ms": pr.e2e_ms,
    }
    if metric not in values:
        raise UserError(f"unknown metric {metric!r}")
    return values[metric]


def row_band(dep: Deployment, row: Row, cal: Calibration) -> float:
    """The p80 relative half-width of the row's calibration group (the roofline's when none)."""
    p, label = cal.lookup(dep.engine.id, hw_class(dep), row.epoch)
    return cal.default_band if label == "roofline" else p.band


def evaluate_rows(cat: Catalog, rows: list[Row], cal: Calibration) -> list[RowResult]:
    out = []
    for row in rows:
        metric = row.get("metric")
        try:
            measured = float(row.get("value"))
        except ValueError:
            measured = float("nan")
        base: dict[str, Any] = dict(
            id=row.id,
            metric=metric,
            measured=measured,
            placement=row.get("placement"),
            engine=row.get("engine"),
            source=row.source_key,
            scope=row.get("scope"),
            ambiguity=row.get("ambiguity"),
        )
        if metric not in METRICS:
            out.append(RowResult(predicted=None, ape=None, reason=f"unknown metric '{metric}'", **base))
            continue
        if not math.isfinite(measured) or measured <= 0:
            out.append(RowResult(predicted=None, ape=None, reason="value is not a positive number", **base))
            continue
        try:
            full, filled = complete_row(row)
            dep, wl, defaults = row_deployment(cat, full)
            defaults = filled + defaults
            pred = predict_metric(dep, wl, metric, row, cal)
            band = row_band(dep, row, cal)
        except UserError as exc:
            out.append(RowResult(predicted=None, ape=None, reason=str(exc).split(". Known")[0], **base))
            continue
        except (ZeroDivisionError, ValueError) as exc:
            out.append(RowResult(predicted=None, ape=None, reason=f"cannot predict: {exc}", **base))
            continue
        base["engine"] = dep.engine.id
        out.append(
            RowResult(
                predicted=pred,
                ape=abs(pred - measured) / measured,
                reason="",
                defaults=defaults,
                group=f"{dep.engine.id}/{hw_class(dep)}",
                band=band,
                role=row.get("role") or "aggregated",
                **base,
            )
        )
    return out


def summarize(results: list[RowResult]) -> dict:
    def stats(rs: list[RowResult]) -> dict:
        apes = sorted(r.ape for r in rs if r.ape is not None)
        n = len(rs)
        if not apes:
            return {
                "rows": n,
                "predicted": 0,
                "coverage": 0.0,
                "median_ape": None,
                "p90_ape": None,
                "within_30pct": None,
            }

        def pct(q):
            k = (len(apes) - 1) * q
            lo, hi = math.floor(k), math.ceil(k)
            return apes[lo] + (apes[hi] - apes[lo]) * (k - lo)

        return {
            "rows": n,
            "predicted": len(apes),
            "coverage": len(apes) / n if n else 0.0,
            "median_ape": pct(0.5),
            "p90_ape": pct(0.9),
            "within_30pct": sum(a <= 0.30 for a in apes) / len(apes),
        }

    by_metric = {m: stats([r for r in results if r.metric == m]) for m in sorted({r.metric for r in results})}
    by_placement = {p: stats([r for r in results if r.placement == p]) for p in sorted({r.placement for r in results})}
    return {**stats(results), "by_metric": by_metric, "by_placement": by_placement}


def filter_rows(rows: list[Row], scope: str | None, max_ambiguity: str | None) -> list[Row]:
    order = {"none": 0, "minor": 1, "major": 2}
    out = rows
    if scope:
        out = [r for r in out if r.get("scope") == scope]
    if max_ambiguity:
        if max_ambiguity not in order:
            raise UserError(f"--max-ambiguity must be one of none, minor, major (got {max_ambiguity!r})")
        out = [r for r in out if order.get(r.get("ambiguity"), 2) <= order[max_ambiguity]]
    return out
