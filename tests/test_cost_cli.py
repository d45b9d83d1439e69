"""`dsdeploy cost`: JSON keys, --throughput, the BOM, and clean errors."""

import json

import pytest
from typer.testing import CliRunner

from dsdeploy.cli.main import app
from dsdeploy.errors import UserError
from dsdeploy.planner.bom import CostOptions
from dsdeploy.planner.costing import build_cost

KEYS = {
    "currency",
    "capex",
    "annual",
    "power_kw",
    "cost_per_mtok_output",
    "api_cost_per_mtok_output",
    "rent_cost_per_mtok_output",
    "breakeven_tokens_per_day",
    "bom",
    "storage_load",
    "cooling",
    "labels",
}


def test_cost_json_keys():
    r = CliRunner().invoke(
        app,
        [
            "cost",
            "--weights",
            "fp8",
            "--accelerator",
            "h200-sxm",
            "--json",
            "--throughput",
            "1000",
            "--requests-per-day",
            "1000",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert KEYS <= set(d)
    assert set(d["annual"]) >= {"depreciation", "energy", "staff", "maintenance", "total"}
    assert set(d["power_kw"]) >= {"idle", "load"}
    assert d["labels"]["throughput"] == "stated (--throughput)"
    items = [b["item"] for b in d["bom"]]
    assert items[:4] == ["accelerator", "server", "dram", "nvme"] and "switch" not in items


def test_throughput_overrides_and_scales():
    o = CostOptions(utilization=1.0)
    a = build_cost(weights="fp8", accelerator="h200-sxm", throughput=1000, opts=o)
    b = build_cost(weights="fp8", accelerator="h200-sxm", throughput=2000, opts=o)
    assert a["capex"] == b["capex"]
    assert a["cost_per_mtok_output"] == pytest.approx(
        2 * b["cost_per_mtok_output"], rel=0.05
    )  # energy is per-token too


def test_multinode_bom_has_nics_and_switch():
    d = build_cost(weights="fp8", accelerator="h100-sxm", count=8, nodes=2, throughput=500)
    items = {b["item"]: b for b in d["bom"]}
    assert items["nic"]["qty"] == 16 and items["switch"]["qty"] == 1 and items["server"]["qty"] == 2
    assert d["fits"]


def test_currency_cny_matches_usd_times_fx():
    u = build_cost(weights="fp8", accelerator="h200-sxm", throughput=1000, currency="USD", fx_rate=7.0)
    c = build_cost(weights="fp8", accelerator="h200-sxm", throughput=1000, currency="CNY", fx_rate=7.0)
    assert c["capex"] == pytest.approx(u["capex"] * 7.0, rel=1e-6)


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--requests-per-day", "0"], "daily volume must be a finite number > 0"),
        (["--tokens-per-day", "5000"], "exactly one of --requests-per-day and --tokens-per-day"),
        (["--years", "0"], "--years"),
        (["--years", "-1"], "--years"),
        (["--pue", "0.5"], "--pue"),
        (["--currency", "EUR"], "USD or CNY"),
        (["--region", "mars"], "electricity region"),
        (["--api-date", "2020-01-01"], "no deepseek"),
    ],
)
def test_errors_are_user_errors(args, msg):
    with pytest.raises(UserError, match=msg):
        CliRunner().invoke(
            app,
            ["cost", "--throughput", "100", "--requests-per-day", "1000", *args],
            catch_exceptions=False,
            standalone_mode=False,
        )


def test_cli_exit_code_two(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("dsdeploy")
    r = subprocess.run([str(exe), "cost"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--requests-per-day" in r.stderr


def test_rack_priced_gpus_get_no_host_memory_or_drive_lines():
    """GB200 is priced per GPU as 1/72 of an NVL72 rack, Grace and its memory included: adding
    DDR5 and NVMe lines on top counted the host twice (8x gb200 got 3,008 GB of DDR5)."""
    r = CliRunner().invoke(
        app,
        [
            "cost",
            "--weights",
            "fp8",
            "--accelerator",
            "gb200",
            "--json",
            "--throughput",
            "1000",
            "--requests-per-day",
            "1000",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    items = [b["item"] for b in d["bom"]]
    assert items == ["accelerator"]
    # issue 13: sold only as whole NVL72 racks: 8 GPUs are one rack at ≈$3.1 M (facts.md §1d
    # [fetchlogic-gb200]), not 8 × the $43,000 per-GPU share; the rack ships liquid-cooled
    assert d["bom"][0]["qty"] == 1 and "NVL72 rack" in d["bom"][0]["spec"]
    assert d["capex"] == pytest.approx(3_100_000.0)
    assert d["cooling"]["kind"] == "liquid-unit" and "air" not in d["cooling"]["guidance"]
