"""A demand that is not a finite positive number is one message and exit 2 (review finding:
`--requests-per-day nan` crashed with a ValueError deep in recommend; `--ttft-ms nan` passed every
SLO check silently, since every comparison with NaN is False)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsdeploy.errors import UserError
from dsdeploy.planner.demand import Demand


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0])
def test_daily_volume_must_be_finite_and_positive(bad):
    with pytest.raises(UserError, match="finite number > 0"):
        Demand.build(requests_per_day=bad, input_len=100, output_len=100)


@pytest.mark.parametrize("field", ["ttft_ms", "tpot_ms", "budget"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0])
def test_slos_and_budget_must_be_finite_and_positive(field, bad):
    with pytest.raises(UserError, match="finite number > 0"):
        Demand.build(requests_per_day=1000, input_len=100, output_len=100, **{field: bad})


@pytest.mark.parametrize(
    "args",
    [
        ["recommend", "--requests-per-day", "nan"],
        ["recommend", "--requests-per-day", "inf"],
        ["recommend", "--requests-per-day", "1000", "--ttft-ms", "nan"],
        ["cost", "-w", "fp8", "-a", "h200-sxm", "--requests-per-day", "nan"],
    ],
)
def test_cli_says_one_thing_and_exits_2(args):
    r = subprocess.run([sys.executable, "-m", "dsdeploy.cli.main", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "finite number > 0" in r.stderr and "Traceback" not in r.stderr
