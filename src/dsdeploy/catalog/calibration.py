"""Calibration data: the step model's efficiency factors, and reading/writing them (TOML).

The types live here, in the catalog layer, because a calibration is data the estimators consume
(catalog → estimators; the catalog imports nothing from the estimators). The shipped file,
`data/calibration.toml`, is fitted by `bench/accuracy.py --refit` on
`data/reference/measurements/public.csv` + `data/reference/measurements/inferencex-subset.csv` +
`data/reference/measurements/extra.csv`;
`--calibration FILE` replaces it.

Per (engine, hardware class[, release epoch]) group, four bounded knobs, each with a physical prior
(validate/fit.py PRIORS; the ranges are PARAM_BOUNDS below):
- `bw_eff`: achieved fraction of peak memory bandwidth for the bytes a step streams;
- `compute_eff`: achieved fraction of dense peak for large GEMMs (eff_max); a GEMM of M rows
  reaches eff_max · M / (M + m_half) (tile quantisation and launch latency at small M);
- `m_half`: the GEMM height (tokens per weight matrix) at which half of eff_max is reached;
- `step_overhead_us`: fixed cost per engine step (scheduler, sampling, graph launch), paid once
  per step whatever the model's depth;
- `moe_bw_eff`: the bandwidth share routed experts stream at on GPUs (grouped-GEMM kernels with a
  few rows per expert reach less than dense GEMMs);
- `request_ms`: what a request pays once before its first token outside the GPU steps (HTTP,
  tokenisation, admission, the first chunk's scheduling), added to TTFT;
- `kernel_us`: latency per kernel launched (launch, ramp and tail), times the kernels the
  architecture runs per step (estimators/performance.py `step_kernels`), added to the step.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tomli_w

from dsdeploy.errors import UserError

SHIPPED = resources.files("dsdeploy.catalog") / "data" / "calibration.toml"

# Physical ranges of the knobs (fit and file check): bandwidth 20–95 % of peak (aiconfigurator's
# empirical HBM factor 0.8, facts.md §1f note 6; STREAM-like reads reach ~90 %); large-GEMM
# efficiency 10–90 % of dense peak (MAMF 51–87 %, facts.md §1b); m_half 4–1024 rows (GEMM tiles
# are 64–256 rows); 0–20 ms of fixed cost per step; 0–30 µs per kernel.
PARAM_BOUNDS = {
    "bw_eff": (0.2, 0.95),
    "compute_eff": (0.1, 0.9),
    "m_half": (4.0, 1024.0),
    "step_overhead_us": (0.0, 20000.0),
    "kernel_us": (0.0, 30.0),
    "moe_bw_eff": (0.1, 0.95),
    "request_ms": (0.0, 500.0),
}

ROOFLINE = {
    "bw_eff": 0.8,
    "compute_eff": 0.7,
    "step_overhead_us": 0.0,
    "m_half": 64.0,
    "kernel_us": 0.0,
    "moe_bw_eff": 0.8,
    "request_ms": 0.0,
}
# the `source` of the groups that carry the physics priors (validate/fit.py PRIORS), never fitted
PRIOR_SOURCE = "physics prior (validate/fit.py PRIORS): not fitted"
ROOFLINE_SOURCE = "facts.md §1f note 6 (0.8 HBM factor, aiconfigurator) and §1b MAMF (51–87 % of peak)"


@lru_cache(maxsize=1)
def engine_families() -> dict[str, str]:
    """engine id → the engine whose calibration group it borrows when it has none of its own (same
    kernels or same runtime): catalog data, engines.toml `family`."""
    from dsdeploy.catalog import load_catalog

    return {e.id: e.family for e in load_catalog().engines.values() if e.family}


def class_family(hw_class: str) -> str:
    """Hardware family of a calibration class: gpu, gpu-amd (ROCm's kernels are another stack),
    hybrid, cpu or unified."""
    if hw_class.endswith("-amd") or hw_class == "gpu-amd":
        return "gpu-amd"
    if hw_class.startswith(("datacenter-gpu", "pcie-gpu")) or hw_class == "gpu":
        return "gpu"
    return hw_class


def epoch_of(date: str) -> str:
    """Release epoch of an engine build from a row's date (YYYY-MM-DD): the quarter, e.g. 2026Q1
    (engines release every few weeks; a quarter holds a few releases, a half-year held too many:
    in-sample 12.7 % → 12.2 % and leave-one-accelerator-out 24.4 % → 21.6 % on the InferenceX
    subset, docs/accuracy.md). Empty when the date is unknown."""
    if len(date) < 7 or not date[:4].isdigit() or not date[5:7].isdigit():
        return ""
    return f"{date[:4]}Q{(int(date[5:7]) - 1) // 3 + 1}"


@dataclass(frozen=True)
class GroupParams:
    engine: str
    hw_class: str
    bw_eff: float
    compute_eff: float
    step_overhead_us: float = 0.0
    m_half: float = 64.0
    kernel_us: float = 0.0
    moe_bw_eff: float = 0.8
    request_ms: float = 0.0
    epoch: str = ""  # "" = any release; else the quarter of the builds it was fitted on
    rows: int = 0
    band: float = 0.5  # relative half-width covering 80 % of held-out errors (p80)
    source: str = ""


@dataclass(frozen=True)
class Calibration:
    groups: tuple[GroupParams, ...] = ()
    fitted_on: str = ""
    default_band: float = 1.0  # roofline band: "within a factor of 2"
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    # engine → family to borrow from (engines.toml `family`), read once when the calibration is made
    families: dict[str, str] = field(default_factory=engine_families, compare=False, hash=False)

    def lookup(self, engine: str, hw_class: str, epoch: str | None = None) -> tuple[GroupParams, str]:
        """(params, label). label is 'calibrated' for an exact group; 'calibrated-borrowed' when the
        engine family's group or the hardware family's fit (engine "*") stands in; 'physics-prior'
        when no row of the hardware family was fitted and its physics prior (a CPU's, not a GPU's)
        or the generic prior stands in; 'roofline' when the calibration carries neither. `epoch` None = the newest fitted epoch of the group (what a deployer
        installs today); "" = the group's all-epoch fit."""
        by_key: dict[tuple[str, str, str], GroupParams] = {(g.engine, g.hw_class, g.epoch): g for g in self.groups}
        fam = engine
        seen: set[str] = set()
        label = "calibrated"
        while fam and fam not in seen:
            hit = self._at(by_key, fam, hw_class, epoch)
            if hit is not None:
                return hit, label
            seen.add(fam)
            fam = self.families.get(fam, "")
            label = "calibrated-borrowed"
        fam_keys = [("*", class_family(hw_class), "")]
        if class_family(hw_class) == "gpu-amd":
            fam_keys.append(("*", "gpu", ""))  # an unfitted ROCm family borrows the GPU family
        # no fit for this hardware family: its physics prior (a CPU's is not a GPU's), then the
        # generic prior
        for key in fam_keys:
            if key in by_key:
                return by_key[key], "calibrated-borrowed"
        for key in (("physics", class_family(hw_class), ""), ("*", "*", "")):
            if key in by_key and by_key[key].source == PRIOR_SOURCE:
                return by_key[key], "physics-prior"
            if key in by_key:
                return by_key[key], "calibrated-borrowed"
        roof = GroupParams(
            engine,
            hw_class,
            bw_eff=ROOFLINE["bw_eff"],
            compute_eff=ROOFLINE["compute_eff"],
            step_overhead_us=ROOFLINE["step_overhead_us"],
            m_half=ROOFLINE["m_half"],
            kernel_us=ROOFLINE["kernel_us"],
            moe_bw_eff=ROOFLINE["moe_bw_eff"],
            request_ms=ROOFLINE["request_ms"],
            band=self.default_band,
            source=ROOFLINE_SOURCE,
        )
        return roof, "roofline"

    def physics(self, hw_class: str) -> GroupParams | None:
        """The physics prior of a hardware family (engine "physics"), if the file carries one."""
        by_key = {(g.engine, g.hw_class): g for g in self.groups}
        return by_key.get(("physics", class_family(hw_class))) or by_key.get(("physics", "gpu"))

    @staticmethod
    def _at(by_key: dict, engine: str, hw_class: str, epoch: str | None) -> GroupParams | None:
        if epoch is None:
            eps = sorted(e for (g, h, e) in by_key if g == engine and h == hw_class and e)
            epoch = eps[-1] if eps else ""
        if (engine, hw_class, epoch) in by_key:
            return by_key[(engine, hw_class, epoch)]
        return by_key.get((engine, hw_class, ""))


_FIELDS = ("engine", "hw_class", "bw_eff", "compute_eff")


def _check(g: dict, i: int, where: str) -> None:
    for k in _FIELDS:
        if k not in g:
            raise UserError(f"{where}: group {i} is missing '{k}'")
    for k, (lo, hi) in PARAM_BOUNDS.items():
        if k in g and not (lo <= float(g[k]) <= hi):
            raise UserError(f"{where}: group {i} '{k}' must lie in [{lo:g}, {hi:g}], got {g[k]}")


def parse_calibration(raw: dict, where: str) -> Calibration:
    """Groups from a calibration file. A v1 file (per-layer overhead, separate prefill
    efficiency) still loads: its `layer_overhead_us` and `prefill_compute_eff` are ignored, the
    v2 defaults stand in."""
    groups = []
    for i, g in enumerate(raw.get("group", [])):
        _check(g, i, where)
        groups.append(
            GroupParams(
                engine=str(g["engine"]),
                hw_class=str(g["hw_class"]),
                bw_eff=float(g["bw_eff"]),
                compute_eff=float(g["compute_eff"]),
                step_overhead_us=float(g.get("step_overhead_us", 0.0)),
                m_half=float(g.get("m_half", ROOFLINE["m_half"])),
                kernel_us=float(g.get("kernel_us", 0.0)),
                moe_bw_eff=float(g.get("moe_bw_eff", g.get("bw_eff"))),
                request_ms=float(g.get("request_ms", 0.0)),
                epoch=str(g.get("epoch", "")),
                rows=int(g.get("rows", 0)),
                band=float(g.get("band", 0.5)),
                source=str(g.get("source", where)),
            )
        )
    meta = raw.get("meta", {})
    return Calibration(
        groups=tuple(groups),
        fitted_on=str(meta.get("fitted_on", "")),
        default_band=float(meta.get("default_band", 1.0)),
        meta=meta,
    )


@lru_cache(maxsize=1)
def shipped_calibration() -> Calibration:
    if not SHIPPED.is_file():
        return Calibration()
    return parse_calibration(tomllib.loads(SHIPPED.read_text()), "shipped calibration")


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The shipped calibration, or a user's file."""
    if path is None:
        return shipped_calibration()
    p = Path(path)
    if not p.exists():
        raise UserError(f"calibration file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{p}: not valid TOML ({exc})") from None
    return parse_calibration(raw, str(p))


def calibration_to_toml(cal: Calibration) -> str:
    raw = {
        "meta": {**cal.meta, "fitted_on": cal.fitted_on, "default_band": cal.default_band},
        "group": [
            {
                "engine": g.engine,
                "hw_class": g.hw_class,
                "epoch": g.epoch,
                "bw_eff": round(g.bw_eff, 4),
                "compute_eff": round(g.compute_eff, 4),
                "m_half": round(g.m_half, 1),
                "step_overhead_us": round(g.step_overhead_us, 1),
                "kernel_us": round(g.kernel_us, 2),
                "moe_bw_eff": round(g.moe_bw_eff, 4),
                "request_ms": round(g.request_ms, 1),
                "rows": g.rows,
                "band": round(g.band, 3),
                "source": g.source,
            }
            for g in cal.groups
        ],
    }
    return tomli_w.dumps(raw)
