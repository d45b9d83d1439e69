"""Cost formulas against hand-computed values (estimators/cost.py)."""

import pytest

from dsdeploy.estimators import cost as C


def test_simple_formulas():
    assert C.straight_line_depreciation(300_000, 3) == 100_000
    assert C.straight_line_depreciation(300_000, 3, salvage=30_000) == 90_000
    assert C.staff_cost(0.5, 200_000) == 100_000
    assert C.maintenance_cost(300_000, 10) == 30_000
    assert C.energy_cost(1000, 0.8) == 800
    assert C.tokens_per_year(1000, 0.5) == 1000 * 0.5 * 3600 * 8760
    assert C.rent_annual(8, 2.0) == 8 * 2.0 * 8760
    with pytest.raises(ValueError):
        C.straight_line_depreciation(1, 0)


def test_api_and_blended():
    # 1000 in, 500 out: per 1M output tokens pay 0.42 + 2 × 0.28 = 0.98
    assert C.api_cost_per_mtok_output(1000, 500, 0.42, 0.28) == pytest.approx(0.98)
    # half the input hits the cache at 0.028: 0.42 + 2 × (0.5 × 0.028 + 0.5 × 0.28) = 0.728
    assert C.api_cost_per_mtok_output(1000, 500, 0.42, 0.28, 0.028, 0.5) == pytest.approx(0.728)
    # blended: (1000 × 0.28 + 500 × 0.42) / 1500 = 0.32667
    assert C.blended_per_mtok(1000, 500, 0.28, 0.42) == pytest.approx(490 / 1500)


def test_breakeven():
    # fixed 365,000/yr = 1,000/day; API 3 per 1M, local variable 1 per 1M → 500 M tokens/day
    assert C.breakeven_output_tokens_per_day(365_000, 1.0, 3.0) == pytest.approx(500e6)
    assert C.breakeven_output_tokens_per_day(365_000, 3.0, 3.0) is None


def test_tco_hand_computed():
    t = C.tco(
        C.TcoInputs(
            capex=300_000,
            years=3,
            kw_idle=2,
            kw_load=8,
            utilization=0.5,
            pue=1.5,
            price_per_kwh=0.1,
            fte=0.5,
            salary=200_000,
            maintenance_pct=10,
            output_tok_s=1000,
            input_len=1000,
            output_len=500,
            api_out=0.42,
            api_in_miss=0.28,
            rent_per_year=100_000,
        )
    )
    assert t.avg_kw == 5.0
    assert t.kwh_per_year == pytest.approx(5 * 8760 * 1.5)  # 65,700
    assert t.annual.energy == pytest.approx(6_570)
    assert t.annual.depreciation == 100_000 and t.annual.staff == 100_000 and t.annual.maintenance == 30_000
    assert t.annual.total == pytest.approx(236_570)
    assert t.output_tokens_per_year == pytest.approx(15_768e6)
    assert t.cost_per_mtok_output == pytest.approx(236_570 / 15_768)  # 15.003
    assert t.cost_per_mtok_blended == pytest.approx(236_570 / 15_768 / 3)
    assert t.api_cost_per_mtok_output == pytest.approx(0.98)
    assert t.rent_cost_per_mtok_output == pytest.approx((100_000 + 100_000) / 15_768)
    # fixed = 100k + 100k + 30k + idle 2 kW × 8760 × 1.5 × 0.1 = 232,628; variable = 6 kW × 1.5 / 3.6e6 tok × 1e6 × 0.1 = 0.25
    assert t.fixed_annual == pytest.approx(232_628)
    assert t.variable_per_mtok_output == pytest.approx(0.25)
    assert t.breakeven_output_tokens_per_day == pytest.approx(232_628 / 365 / 0.73 * 1e6)
    assert t.capacity_output_tokens_per_day == 86_400_000
    assert t.notes  # break-even (873 M/day) exceeds capacity (86.4 M/day)


def test_tco_rejects_bad_inputs():
    base = dict(
        capex=1,
        years=3,
        kw_idle=1,
        kw_load=2,
        utilization=0.5,
        pue=1.2,
        price_per_kwh=0.1,
        fte=0,
        salary=0,
        maintenance_pct=0,
        output_tok_s=1,
        input_len=1,
        output_len=1,
        api_out=1,
        api_in_miss=1,
    )
    for bad in ({"utilization": 0}, {"utilization": -0.1}, {"utilization": 1.5}, {"years": 0}):
        with pytest.raises(ValueError):
            C.tco(C.TcoInputs(**{**base, **bad}))
