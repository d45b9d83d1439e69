"""Power, energy and cooling guidance (estimators/power.py) against hand-computed values."""

import pytest

from dsdeploy.estimators import power as P


def test_dgx_h100_system_factor():
    a = P.PowerAssumptions()
    assert a.gpu_system_factor == pytest.approx(10.2 / 5.6)
    pw = P.gpu_server_power(700, 8, 1)
    assert pw.max_kw == pytest.approx(10.2)  # the DGX H100 rating, not 5.6 kW of GPUs
    assert pw.accel_idle_kw == pytest.approx(0.56)  # 8 × 700 × 0.10
    assert pw.host_idle_kw == pytest.approx(4.6 * 0.30)
    assert pw.idle_kw == pytest.approx(1.94)
    assert pw.accel_load_kw == pytest.approx(3.92)  # 8 × 700 × 0.70
    assert pw.load_kw == pytest.approx(7.5)  # midpoint of DGX H100 "typical 6.5–8.5 kW"
    assert pw.at_utilization(0.5) == pytest.approx((1.94 + 7.5) / 2)
    two = P.gpu_server_power(700, 8, 2)
    assert two.max_kw == pytest.approx(20.4) and two.per_server_max_kw == pytest.approx(10.2)


def test_cpu_and_unified():
    pw = P.cpu_host_power(350, 2, accel_tdp_w=450, accels=1)
    assert pw.max_kw == pytest.approx((350 * 2 * 1.5 + 450) / 1000)
    u = P.unified_power(200, 2)
    assert u.max_kw == pytest.approx(0.4) and u.host_load_kw == 0


def test_annual_energy():
    e = P.annual_energy(5.0, 1.5, 0.1)
    assert e.kwh_per_year == pytest.approx(65_700)
    assert e.cost_per_year == pytest.approx(6_570)
    with pytest.raises(ValueError):
        P.annual_energy(1, 0.9, 0.1)


@pytest.mark.parametrize(
    "kw,servers,kind",
    [
        (10.2, 1, "air"),
        (10.2, 2, "air-contained"),
        (10.2, 4, "liquid"),
        (14.3, 4, "liquid"),
        (0.4, 1, "air"),
        (30.0, 4, "liquid-facility"),
    ],
)
def test_cooling_bands(kw, servers, kind):
    g = P.cooling_guidance(kw, servers)
    assert g.kind == kind
    assert g.rack_kw == pytest.approx(kw * min(servers, 4))
    assert g.source


def test_cooling_spread_note():
    g = P.cooling_guidance(10.2, 4)
    assert g.kind == "liquid" and "2 server(s) per rack" in g.notes[0]
