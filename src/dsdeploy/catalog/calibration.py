"""Read and write calibration files (TOML). The shipped file, `data/calibration.toml`, is fitted by
`dsdeploy calibrate` on `data/reference/measurements/public.csv` only; `--calibration FILE` replaces it."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tomli_w

from dsdeploy.errors import UserError
from dsdeploy.estimators.calibration import Calibration, GroupParams

SHIPPED = resources.files("dsdeploy.catalog") / "data" / "calibration.toml"
_FIELDS = ("engine", "hw_class", "bw_eff", "compute_eff", "layer_overhead_us")


def parse_calibration(raw: dict, where: str) -> Calibration:
    groups = []
    for i, g in enumerate(raw.get("group", [])):
        for k in _FIELDS:
            if k not in g:
                raise UserError(f"{where}: group {i} is missing '{k}'")
        for k in ("bw_eff", "compute_eff", "prefill_compute_eff"):
            if k not in g:
                continue
            if not (0 < float(g[k]) <= 1.5):
                raise UserError(f"{where}: group {i} '{k}' must be a fraction in (0, 1.5], got {g[k]}")
        if float(g["layer_overhead_us"]) < 0:
            raise UserError(f"{where}: group {i} 'layer_overhead_us' must be ≥ 0 (microseconds)")
        groups.append(
            GroupParams(
                engine=str(g["engine"]),
                hw_class=str(g["hw_class"]),
                bw_eff=float(g["bw_eff"]),
                compute_eff=float(g["compute_eff"]),
                layer_overhead_us=float(g["layer_overhead_us"]),
                prefill_compute_eff=float(g.get("prefill_compute_eff", 0.0)),
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
                "bw_eff": round(g.bw_eff, 4),
                "compute_eff": round(g.compute_eff, 5),
                "prefill_compute_eff": round(g.prefill_eff, 5),
                "layer_overhead_us": round(g.layer_overhead_us, 2),
                "rows": g.rows,
                "band": round(g.band, 3),
                "source": g.source,
            }
            for g in cal.groups
        ],
    }
    return tomli_w.dumps(raw)
