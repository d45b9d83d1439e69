"""Power draw, annual energy and cooling guidance. Pure functions; units: W, kW, kWh, hours.

Model
- Accelerators draw a load-dependent fraction of TDP: `idle_frac` × TDP when idle, `busy_frac` × TDP
  while serving (LLM decode is memory-bound and rarely reaches TDP).
- The host (CPUs, DRAM, NICs, NVSwitch, fans, PSU losses) draws too. For GPU servers its maximum is set
  by a system-level factor: a DGX H100 is rated 10.2 kW max for 8 × 700 W = 5.6 kW of GPUs, so
  system max = 1.82 × GPU TDP and host max = 0.82 × GPU TDP. Sources:
  https://www.supercluster.blog/p/6-ai-supercluster-nvidia-dgx-h100 ("Maximum Power Consumption: Up to
  10.2 kW", "Typical 6.5–8.5 kW"), https://unanswered.io/guide/nvidia-dgx-power-consumption-watts (10.2 kW
  maximum system input). CPU hosts: CPU TDP × sockets × `cpu_host_factor`. Unified-memory computers
  (Mac Studio, DGX Spark): the catalog's `tdp_w` is already system power.
- Power at a utilization u (share of time busy): P(u) = P_idle + (P_load − P_idle) × u.
- Annual energy = P(u) × 8,760 h × PUE (facility overhead; facts.md §4d).

Cooling guidance by rack power density (kW per rack, design at maximum draw):
  ≤ 15 kW   standard air (mainstream data centres support 10–15 kW per rack:
            https://refrigerationandaircon.co.za/pushing-the-boundaries-of-air-cooling-in-high-density-environments/ ;
            "Traditional Enterprise: 5–15 kW per rack with air cooling":
            https://michaelbommarito.com/wiki/datacenters/technology/rack-density)
  ≤ 30 kW   air with hot/cold-aisle containment or rear-door heat exchangers ("Cloud Maturity: 15–30 kW per
            rack with optimized air cooling", same page)
  ≤ 100 kW  direct-to-chip liquid cooling ("AI Emergence: 30–100 kW per rack requiring liquid cooling
            transition", same page; "for racks above 40–60 kW, a hybrid approach combining liquid cooling":
            https://heathertechnologies.com/pages/cooling-60-kw-gpu-racks-the-new-power-density-reality)
  > 100 kW  direct liquid cooling, designed with the facility (CDUs, water loop)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HOURS_PER_YEAR = 8760.0

DGX_H100_MAX_KW = 10.2
DGX_H100_GPU_KW = 8 * 0.700
DGX_SOURCE = (
    "DGX H100: 10.2 kW max for 8 × 700 W GPUs (https://www.supercluster.blog/p/6-ai-supercluster-nvidia-dgx-h100)"
)


@dataclass(frozen=True)
class PowerAssumptions:
    """Fractions of TDP/host maximum, each with where it comes from."""

    accel_idle_frac: float = 0.10
    accel_busy_frac: float = 0.70
    gpu_system_factor: float = DGX_H100_MAX_KW / DGX_H100_GPU_KW  # 1.821
    host_idle_frac: float = 0.30
    # chosen so that an 8×H100 DGX at load draws the midpoint of its 6.5–8.5 kW "typical" range:
    # (7.5 − 0.70 × 5.6) / (10.2 − 5.6) = 0.778
    host_busy_frac: float = (7.5 - 0.70 * DGX_H100_GPU_KW) / (DGX_H100_MAX_KW - DGX_H100_GPU_KW)
    cpu_host_factor: float = 1.5
    servers_per_rack: int = 4

    def sources(self) -> dict[str, str]:
        return {
            "accel_idle_frac": "estimate (unconfirmed): an idle H100 draws ≈60–90 W of 700 W",
            "accel_busy_frac": "https://theneuralbase.com/ai-infrastructure/learn/advanced/h100-tdp-700w/ "
            "('sustained load during LLM inference is often 400–550 W per GPU' of 700 W) — unconfirmed",
            "gpu_system_factor": f"derived: {DGX_SOURCE}: 10.2 / 5.6",
            "host_idle_frac": "estimate (unconfirmed)",
            "host_busy_frac": "derived: DGX H100 typical 6.5–8.5 kW (midpoint 7.5) "
            "(https://www.supercluster.blog/p/6-ai-supercluster-nvidia-dgx-h100)",
            "cpu_host_factor": "estimate (unconfirmed): CPU host max = 1.5 × CPU TDP × sockets (DRAM, fans, board, PSU loss)",
            "servers_per_rack": "estimate: four 4U–8U GPU servers per 42U rack",
        }


@dataclass(frozen=True)
class PowerDraw:
    """Power of the whole deployment in kW, split into accelerators and hosts."""

    accel_idle_kw: float
    accel_load_kw: float
    host_idle_kw: float
    host_load_kw: float
    max_kw: float  # nameplate-style maximum (accelerator TDP + host maximum)
    per_server_max_kw: float
    servers: int
    basis: str
    notes: tuple[str, ...] = ()

    @property
    def idle_kw(self) -> float:
        return self.accel_idle_kw + self.host_idle_kw

    @property
    def load_kw(self) -> float:
        return self.accel_load_kw + self.host_load_kw

    def at_utilization(self, u: float) -> float:
        """Average kW when busy a share `u` of the time."""
        return self.idle_kw + (self.load_kw - self.idle_kw) * u

    def to_dict(self) -> dict:
        return {
            "idle": round(self.idle_kw, 3),
            "load": round(self.load_kw, 3),
            "max": round(self.max_kw, 3),
            "accelerators_idle": round(self.accel_idle_kw, 3),
            "accelerators_load": round(self.accel_load_kw, 3),
            "host_idle": round(self.host_idle_kw, 3),
            "host_load": round(self.host_load_kw, 3),
            "per_server_max": round(self.per_server_max_kw, 3),
            "servers": self.servers,
            "basis": self.basis,
        }


def gpu_server_power(
    accel_tdp_w: float, accels_per_server: int, servers: int, a: PowerAssumptions = PowerAssumptions()
) -> PowerDraw:
    """GPU servers: accelerator TDP share plus a host drawing up to (factor − 1) × GPU TDP."""
    gpu_w = accel_tdp_w * accels_per_server
    host_max_w = gpu_w * (a.gpu_system_factor - 1)
    return PowerDraw(
        accel_idle_kw=servers * gpu_w * a.accel_idle_frac / 1000,
        accel_load_kw=servers * gpu_w * a.accel_busy_frac / 1000,
        host_idle_kw=servers * host_max_w * a.host_idle_frac / 1000,
        host_load_kw=servers * host_max_w * a.host_busy_frac / 1000,
        max_kw=servers * (gpu_w + host_max_w) / 1000,
        per_server_max_kw=(gpu_w + host_max_w) / 1000,
        servers=servers,
        basis=f"{accels_per_server} × {accel_tdp_w:g} W per server × system factor {a.gpu_system_factor:.2f} ({DGX_SOURCE})",
    )


def cpu_host_power(
    cpu_tdp_w: float,
    sockets: int,
    servers: int = 1,
    accel_tdp_w: float = 0.0,
    accels: int = 0,
    a: PowerAssumptions = PowerAssumptions(),
) -> PowerDraw:
    """A CPU host (optionally with accelerators for experts-on-CPU / layer split)."""
    host_max_w = cpu_tdp_w * sockets * a.cpu_host_factor
    gpu_w = accel_tdp_w * accels
    return PowerDraw(
        accel_idle_kw=servers * gpu_w * a.accel_idle_frac / 1000,
        accel_load_kw=servers * gpu_w * a.accel_busy_frac / 1000,
        host_idle_kw=servers * host_max_w * a.host_idle_frac / 1000,
        host_load_kw=servers * host_max_w * a.host_busy_frac / 1000,
        max_kw=servers * (host_max_w + gpu_w) / 1000,
        per_server_max_kw=(host_max_w + gpu_w) / 1000,
        servers=servers,
        basis=f"{sockets} × {cpu_tdp_w:g} W CPU × host factor {a.cpu_host_factor:g}"
        + (f" + {accels} × {accel_tdp_w:g} W accelerators" if accels else ""),
    )


def unified_power(system_w: float, count: int, a: PowerAssumptions = PowerAssumptions()) -> PowerDraw:
    """Unified-memory computers: the catalog figure is wall power of the whole machine."""
    return PowerDraw(
        accel_idle_kw=count * system_w * a.accel_idle_frac / 1000,
        accel_load_kw=count * system_w * a.accel_busy_frac / 1000,
        host_idle_kw=0.0,
        host_load_kw=0.0,
        max_kw=count * system_w / 1000,
        per_server_max_kw=system_w / 1000,
        servers=count,
        basis=f"{count} × {system_w:g} W system power (whole computer)",
    )


@dataclass(frozen=True)
class Energy:
    avg_kw: float
    pue: float
    kwh_per_year: float
    cost_per_year: float


def annual_energy(avg_it_kw: float, pue: float, price_per_kwh: float, hours: float = HOURS_PER_YEAR) -> Energy:
    """kWh/yr = average IT kW × hours × PUE; cost = kWh × price."""
    if pue < 1:
        raise ValueError("PUE must be ≥ 1")
    kwh = avg_it_kw * hours * pue
    return Energy(avg_kw=avg_it_kw, pue=pue, kwh_per_year=kwh, cost_per_year=kwh * price_per_kwh)


@dataclass(frozen=True)
class CoolingGuidance:
    kind: str  # "air" | "air-contained" | "liquid" | "liquid-facility"
    rack_kw: float
    servers_per_rack: int
    racks: int
    text: str
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "rack_kw": round(self.rack_kw, 2),
            "servers_per_rack": self.servers_per_rack,
            "racks": self.racks,
            "guidance": self.text,
            "source": self.source,
        }


COOLING_BANDS = (
    (15.0, "air", "standard air cooling (≤ 15 kW per rack)"),
    (30.0, "air-contained", "air with hot/cold-aisle containment or rear-door heat exchangers (15–30 kW per rack)"),
    (100.0, "liquid", "direct-to-chip liquid cooling (30–100 kW per rack)"),
    (
        math.inf,
        "liquid-facility",
        "direct liquid cooling designed with the facility: CDUs, water loop (> 100 kW per rack)",
    ),
)
COOLING_SOURCE = (
    "https://michaelbommarito.com/wiki/datacenters/technology/rack-density ; "
    "https://refrigerationandaircon.co.za/pushing-the-boundaries-of-air-cooling-in-high-density-environments/ ; "
    "https://heathertechnologies.com/pages/cooling-60-kw-gpu-racks-the-new-power-density-reality"
)


def cooling_guidance(per_server_max_kw: float, servers: int, servers_per_rack: int = 4) -> CoolingGuidance:
    """Classify the densest rack: up to `servers_per_rack` servers at their maximum draw. If that rack
    needs liquid but a single server would be air-coolable, say how many servers per rack stay on air."""
    per_rack = max(1, min(servers, servers_per_rack))
    rack_kw = per_server_max_kw * per_rack
    racks = math.ceil(max(1, servers) / per_rack)
    kind, text = next((k, t) for lim, k, t in COOLING_BANDS if rack_kw <= lim)
    notes = []
    if kind in ("liquid", "liquid-facility") and per_server_max_kw <= 30:
        fit = max(1, int(30 // per_server_max_kw)) if per_server_max_kw > 0 else per_rack
        notes.append(
            f"or spread out: {fit} server(s) per rack ({fit * per_server_max_kw:.1f} kW) stays within contained air cooling"
        )
    return CoolingGuidance(
        kind=kind,
        rack_kw=rack_kw,
        servers_per_rack=per_rack,
        racks=racks,
        text=f"{rack_kw:.1f} kW per rack ({per_rack} × {per_server_max_kw:.2f} kW max): {text}",
        source=COOLING_SOURCE,
        notes=notes,
    )
