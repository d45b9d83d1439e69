"""Total cost of ownership and cost per token. Pure functions; money in one currency (the caller's),
power in kW, energy in kWh, throughput in tokens/s, prices per 1M tokens ("Mtok").

Formulas
- Depreciation (straight line): (capex − salvage) / years.
- Energy: average kW × 8,760 h × PUE × price per kWh (see estimators/power.py).
- Staff: FTE × salary per FTE-year.   Maintenance: pct / 100 × capex per year.
- Output tokens per year = output tok/s (all users, at the workload's concurrency) × utilization × 3,600 × 8,760.
- Cost per 1M output tokens = annual total / (output tokens per year / 1e6). Input tokens ride along:
  each request brings input_len/output_len input tokens per output token, so "blended" = annual total /
  (input + output tokens per year / 1e6).
- API, per 1M output tokens of this workload (so it compares with the local figure, which also pays for
  the prompts): output price + (input_len / output_len) × (hit × p_in_hit + (1 − hit) × p_in_miss).
- Rent: GPUs × hourly rate × 8,760 h (always-on: a 671B model cannot be started per request) + staff.
- Break-even (output tokens per day): local costs F per year fixed (depreciation, staff, maintenance,
  idle energy) plus v per 1M output tokens (energy above idle); the API costs a per 1M output tokens.
  Local is cheaper above T = (F / 365) / (a − v) × 1e6 tokens per day; never if a ≤ v.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dsdeploy.estimators.power import HOURS_PER_YEAR, annual_energy

SECONDS_PER_YEAR = HOURS_PER_YEAR * 3600.0


def straight_line_depreciation(capex: float, years: float, salvage: float = 0.0) -> float:
    if years <= 0:
        raise ValueError("years must be > 0")
    return (capex - salvage) / years


def staff_cost(fte: float, salary: float) -> float:
    return fte * salary


def maintenance_cost(capex: float, pct: float) -> float:
    return capex * pct / 100.0


def energy_cost(kwh: float, price_per_kwh: float) -> float:
    return kwh * price_per_kwh


def tokens_per_year(tok_s: float, utilization: float) -> float:
    return tok_s * utilization * SECONDS_PER_YEAR


def cost_per_mtok(annual_cost: float, tokens_year: float) -> float | None:
    return annual_cost / (tokens_year / 1e6) if tokens_year > 0 else None


def api_cost_per_mtok_output(
    input_len: int,
    output_len: int,
    p_out: float,
    p_in_miss: float,
    p_in_hit: float | None = None,
    cache_hit: float = 0.0,
) -> float:
    """What the API charges per 1M output tokens of this workload, prompts included."""
    p_hit = p_in_miss if p_in_hit is None else p_in_hit
    p_in = cache_hit * p_hit + (1 - cache_hit) * p_in_miss
    return p_out + (input_len / max(1, output_len)) * p_in


def blended_per_mtok(input_len: int, output_len: int, p_in: float, p_out: float) -> float:
    """Price per 1M tokens, input and output together, weighted by the workload's lengths."""
    return (input_len * p_in + output_len * p_out) / max(1, input_len + output_len)


def rent_annual(gpus: int, rate_per_gpu_hour: float, hours: float = HOURS_PER_YEAR) -> float:
    return gpus * rate_per_gpu_hour * hours


def breakeven_output_tokens_per_day(fixed_annual: float, variable_per_mtok: float, api_per_mtok: float) -> float | None:
    """Output tokens/day above which owning is cheaper than the API; None if it never is."""
    margin = api_per_mtok - variable_per_mtok
    if margin <= 0:
        return None
    return fixed_annual / 365.0 / margin * 1e6


@dataclass(frozen=True)
class AnnualCost:
    depreciation: float
    energy: float
    staff: float
    maintenance: float

    @property
    def total(self) -> float:
        return self.depreciation + self.energy + self.staff + self.maintenance

    def to_dict(self) -> dict:
        return {**{k: round(v, 2) for k, v in asdict(self).items()}, "total": round(self.total, 2)}


@dataclass(frozen=True)
class TcoInputs:
    capex: float
    years: float
    kw_idle: float
    kw_load: float
    utilization: float
    pue: float
    price_per_kwh: float
    fte: float
    salary: float
    maintenance_pct: float
    output_tok_s: float  # all users together while busy
    input_len: int
    output_len: int
    api_out: float  # per 1M tokens
    api_in_miss: float
    api_in_hit: float | None = None
    api_cache_hit: float = 0.0
    rent_per_year: float | None = None  # GPUs × rate × 8,760 h, or None if no rental price


@dataclass(frozen=True)
class Tco:
    annual: AnnualCost
    kwh_per_year: float
    avg_kw: float
    output_tokens_per_year: float
    cost_per_mtok_output: float | None
    cost_per_mtok_blended: float | None
    api_cost_per_mtok_output: float
    api_cost_per_mtok_blended: float
    rent_cost_per_mtok_output: float | None
    rent_annual: float | None
    fixed_annual: float
    variable_per_mtok_output: float
    breakeven_output_tokens_per_day: float | None
    capacity_output_tokens_per_day: float
    notes: list[str] = field(default_factory=list)


def tco(i: TcoInputs) -> Tco:
    """Annual cost, cost per token, and the comparison with the API and with renting."""
    if i.years <= 0:
        raise ValueError("years must be > 0")
    if not 0 < i.utilization <= 1:
        raise ValueError("utilization must be in (0, 1]")
    avg_kw = i.kw_idle + (i.kw_load - i.kw_idle) * i.utilization  # as power.PowerDraw.at_utilization
    energy = annual_energy(avg_kw, i.pue, i.price_per_kwh)
    kwh = energy.kwh_per_year
    annual = AnnualCost(
        depreciation=straight_line_depreciation(i.capex, i.years),
        energy=energy.cost_per_year,
        staff=staff_cost(i.fte, i.salary),
        maintenance=maintenance_cost(i.capex, i.maintenance_pct),
    )
    out_year = tokens_per_year(i.output_tok_s, i.utilization)
    ratio = (i.input_len + i.output_len) / max(1, i.output_len)
    per_out = cost_per_mtok(annual.total, out_year)
    api_out = api_cost_per_mtok_output(
        i.input_len, i.output_len, i.api_out, i.api_in_miss, i.api_in_hit, i.api_cache_hit
    )
    rent_total = None if i.rent_per_year is None else i.rent_per_year + annual.staff
    rent_per = None if rent_total is None else cost_per_mtok(rent_total, out_year)
    # fixed vs variable for break-even
    idle_energy = i.kw_idle * HOURS_PER_YEAR * i.pue * i.price_per_kwh
    fixed = annual.depreciation + annual.staff + annual.maintenance + idle_energy
    busy_kwh_per_mtok = (i.kw_load - i.kw_idle) * i.pue / (i.output_tok_s * 3600.0) * 1e6 if i.output_tok_s > 0 else 0.0
    variable = busy_kwh_per_mtok * i.price_per_kwh
    be = breakeven_output_tokens_per_day(fixed, variable, api_out)
    capacity = i.output_tok_s * 86400.0
    notes = []
    if be is not None and be > capacity:
        notes.append(
            f"break-even ({be:,.0f} output tokens/day) exceeds this hardware's capacity "
            f"({capacity:,.0f}/day at 100 % busy): at these prices it never beats the API"
        )
    if be is None:
        notes.append("the API costs less per token than this hardware's electricity alone: no break-even")
    return Tco(
        annual=annual,
        kwh_per_year=kwh,
        avg_kw=avg_kw,
        output_tokens_per_year=out_year,
        cost_per_mtok_output=per_out,
        cost_per_mtok_blended=None if per_out is None else per_out / ratio,
        api_cost_per_mtok_output=api_out,
        api_cost_per_mtok_blended=api_out / ratio,
        rent_cost_per_mtok_output=rent_per,
        rent_annual=rent_total,
        fixed_annual=fixed,
        variable_per_mtok_output=variable,
        breakeven_output_tokens_per_day=be,
        capacity_output_tokens_per_day=capacity,
        notes=notes,
    )


# ---------------------------------------------------------------------------- the seed article
@dataclass(frozen=True)
class SeedLine:
    item: str
    spec: str
    unit_price: float
    qty: int

    @property
    def subtotal(self) -> float:
        return self.unit_price * self.qty


# The article's own BOM (section 四.1), CNY; its hidden costs (四.2) follow.
SEED_BOM = (
    SeedLine("NVIDIA H100", "80GB HBM3", 280_000, 8),
    SeedLine("服务器机箱 (server chassis)", "8U rack", 15_000, 1),
    SeedLine("液冷系统 (liquid cooling)", "split cold plate", 85_000, 1),
    SeedLine("存储阵列 (storage)", "48TB NVMe SSD ×8", 42_000, 8),
    SeedLine("网络交换机 (switch)", "400Gbps InfiniBand", 120_000, 1),
)
SEED_KWH_PER_YEAR = 49_420.0
SEED_PRICE_PER_KWH = 0.8
SEED_FTE = 0.5
SEED_SALARY = 300_000.0
SEED_YEARS = 3.0


@dataclass(frozen=True)
class SeedTable:
    bom_total: float
    electricity: float
    staff: float
    depreciation: float
    implied_kw: float  # kWh / 8,760 h


def seed_table() -> SeedTable:
    """The seed article's cost table, recomputed from its own inputs with the formulas above."""
    capex = sum(line.subtotal for line in SEED_BOM)
    return SeedTable(
        bom_total=capex,
        electricity=energy_cost(SEED_KWH_PER_YEAR, SEED_PRICE_PER_KWH),
        staff=staff_cost(SEED_FTE, SEED_SALARY),
        depreciation=straight_line_depreciation(capex, SEED_YEARS),
        implied_kw=SEED_KWH_PER_YEAR / HOURS_PER_YEAR,
    )
