"""Efficiency factors of the step-time model: the only fitted parameters.

Per (engine, hardware class) group:
- `bw_eff`: achieved fraction of peak memory bandwidth for the bytes a step reads;
- `compute_eff`: achieved fraction of dense peak FLOPS in decode steps (absorbed MLA, small-M GEMMs);
- `prefill_compute_eff`: the same for prefill chunks (non-absorbed MLA, large-M grouped GEMMs) — a
  separate factor because 2025-era engines reached 1–2 % of peak in prefill but ~10 % in
  large-batch decode (e.g. SGLang's 2,785 output tok/s per H100 with EP72, LMSYS 2025-05-05);
- `layer_overhead_us`: fixed cost per layer per step (kernel launches, synchronisation, scheduler),
  so a step has `layers × layer_overhead_us` of overhead whatever its size.

Uncalibrated ("roofline") defaults: bandwidth 0.8 (aiconfigurator's empirical HBM factor, facts.md
§1f note 6 [aic-h100sxm]); compute 0.7 (measured max achievable dense matmul is 51–87 % of peak,
facts.md §1b MAMF table [stas-acc]); no per-layer overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class RooflineFactors(TypedDict):
    bw_eff: float
    compute_eff: float
    layer_overhead_us: float
    prefill_compute_eff: float


ROOFLINE: RooflineFactors = {"bw_eff": 0.8, "compute_eff": 0.7, "layer_overhead_us": 0.0, "prefill_compute_eff": 0.7}
ROOFLINE_SOURCE = "facts.md §1f note 6 (0.8 HBM factor, aiconfigurator) and §1b MAMF (51–87 % of peak)"

# When an engine has no fitted group, borrow its family's (same kernels or same runtime).
ENGINE_FAMILY = {
    "ollama": "llama.cpp",
    "ik_llama.cpp": "llama.cpp",
    "lmdeploy": "vllm",
    "deepseek-internal": "sglang",
    "exo": "mlx",
    "mlx": "llama.cpp",
    "rkllm": "llama.cpp",
    "trtllm": "sglang",
}


def class_family(hw_class: str) -> str:
    """Hardware family of a calibration class: gpu, hybrid, cpu or unified."""
    if hw_class.startswith(("datacenter-gpu", "pcie-gpu")) or hw_class == "gpu":
        return "gpu"
    return hw_class


@dataclass(frozen=True)
class GroupParams:
    engine: str
    hw_class: str
    bw_eff: float
    compute_eff: float
    layer_overhead_us: float
    prefill_compute_eff: float = 0.0  # 0 → same as compute_eff
    rows: int = 0
    band: float = 0.5  # relative error band (p80 of |log error| → fraction) from validation residuals
    source: str = ""

    @property
    def prefill_eff(self) -> float:
        return self.prefill_compute_eff or self.compute_eff


@dataclass(frozen=True)
class Calibration:
    groups: tuple[GroupParams, ...] = ()
    fitted_on: str = ""
    default_band: float = 1.0  # roofline band: "within a factor of 2"
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def lookup(self, engine: str, hw_class: str) -> tuple[GroupParams, str]:
        """(params, label). label is 'calibrated' for an exact group; 'calibrated-borrowed' when the
        engine family's group or the hardware family's fit (engine "*") stands in; 'roofline' when
        nothing was fitted."""
        by_key = {(g.engine, g.hw_class): g for g in self.groups}
        if (engine, hw_class) in by_key:
            return by_key[(engine, hw_class)], "calibrated"
        fam = ENGINE_FAMILY.get(engine)
        seen = {engine}
        while fam and fam not in seen:
            if (fam, hw_class) in by_key:
                return by_key[(fam, hw_class)], "calibrated-borrowed"
            seen.add(fam)
            fam = ENGINE_FAMILY.get(fam)
        fam = class_family(hw_class)
        if ("*", fam) in by_key:
            return by_key[("*", fam)], "calibrated-borrowed"
        if ("*", "*") in by_key:  # what engines achieve on any hardware: better than the roofline
            return by_key[("*", "*")], "calibrated-borrowed"
        return (
            GroupParams(engine, hw_class, band=self.default_band, source=ROOFLINE_SOURCE, **ROOFLINE),
            "roofline",
        )


def load_calibration(path=None) -> Calibration:
    """Convenience re-export of `dsdeploy.catalog.calibration.load_calibration` (the catalog layer
    does the file reading; this module stays free of I/O)."""
    from dsdeploy.catalog.calibration import load_calibration as _load

    return _load(path)
