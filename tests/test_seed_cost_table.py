"""The seed article's cost table (section 四), reproduced exactly from its own inputs."""

from dsdeploy.estimators.cost import SEED_BOM, seed_table


def test_seed_bom_lines():
    assert [line.subtotal for line in SEED_BOM] == [2_240_000, 15_000, 85_000, 336_000, 120_000]


def test_seed_table_exact():
    t = seed_table()
    assert t.bom_total == 2_796_000  # 8×280,000 + 15,000 + 85,000 + 8×42,000 + 120,000
    assert t.electricity == 39_536  # 49,420 kWh × 0.8 CNY
    assert t.staff == 150_000  # 0.5 FTE × 300,000
    assert t.depreciation == 932_000  # 2,796,000 / 3
    # the article's kWh implies 5.64 kW around the clock: the GPUs' 5.6 kW, no host, no PUE
    assert round(t.implied_kw, 2) == 5.64
