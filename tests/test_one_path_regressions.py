"""Regression tests for issue #11's inconsistencies, each of which came from the step from options
to a deployment being written five times. They read the commands' own outputs (JSON, the launch
script's header, the source's imports), as a user or a reviewer would."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dsdeploy
from dsdeploy.cli.main import app

SRC = Path(dsdeploy.__file__).resolve().parent  # the package under test
COLUMNS = (
    "id", "model", "weights", "kv_dtype", "engine", "accelerator", "accelerators_per_node", "nodes", "cpu",
    "cpu_sockets", "dram", "placement", "tp", "pp", "ep", "dp_attention", "mtp", "input_len", "output_len",
    "concurrency", "metric", "value", "scope", "ambiguity", "source", "prefill_basis",
)  # fmt: skip


def _described(args: list[str]) -> str:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    if args[0] == "deploy":
        return r.output.splitlines()[1].removeprefix("# dsdeploy deploy: ")
    d = json.loads(r.output)
    return {"plan": lambda: d["description"], "cost": lambda: d["deployment"], "doctor": lambda: d["plan"]["describe"]}[
        args[0]
    ]()


def test_defaults_agree_plan_cost_deploy_doctor():
    """plan and cost defaulted to FP16 ('does not fit'), deploy and doctor to FP8 ('fits')."""
    got = {
        "plan": _described(["plan", "--json"]),
        "cost": _described(["cost", "--requests-per-day", "1000", "--json"]),
        "deploy": _described(["deploy", "--model-path", "/m", "--force"]),
        "doctor": _described(["doctor", "--no-measure", "--json", "--model", "deepseek-r1"]),
    }
    assert set(got.values()) == {"deepseek-r1 fp16 on 8× h100-sxm (gpu, vllm)"}, got


def test_deploy_defaults_to_the_seed_accelerator_not_the_cpu():
    """`deploy` with no --accelerator planned a CPU deployment; the default is plan's 8× H100."""
    head = _described(["deploy", "--model-path", "/m", "-w", "fp8", "--force"])
    assert head == "deepseek-r1 fp8 on 8× h100-sxm (gpu, vllm)"


def test_validate_lays_out_multi_node_rows_as_plan_does(tmp_path):
    """A 2 × 8 H100 row without tp/pp: validate made it TP=16 across nodes, plan makes it TP=8
    inside each node and PP=2 across them. Same deployment, same workload, same calibration:
    the same predicted TPOT."""
    plan = CliRunner().invoke(
        app, ["plan", "-w", "fp8", "-a", "h100-sxm", "-n", "8", "--nodes", "2", "--concurrency", "4", "--json"]
    )
    assert plan.exit_code == 0, plan.output
    p = json.loads(plan.output)
    assert (p["parallelism"]["tp"], p["parallelism"]["pp"]) == (8, 2)
    row = ",".join(
        ["multi", "deepseek-r1", "fp8", "", "", "h100-sxm", "8", "2", "", "", "", "gpu", "", "", "", "", "0"]
        + ["1024", "1024", "4", "tpot_ms", "50", "core", "none", "synthetic", ""]
    )
    f = tmp_path / "r.csv"
    f.write_text(",".join(COLUMNS) + "\n" + row + "\n")
    v = CliRunner().invoke(app, ["validate", str(f), "--json"])
    assert v.exit_code == 0, v.output
    got = json.loads(v.output)["rows"][0]
    assert got["engine"] == p["engine"] and got["predicted"] is not None
    # the layout validate predicts with is plan's (the TPOT itself differs legitimately: a row is
    # predicted for its own arrival process and release epoch, a plan for a steady client today)
    from dsdeploy.catalog import load_catalog
    from dsdeploy.validate.scenarios import read_scenarios, row_deployment

    dep, _wl, _notes = row_deployment(load_catalog(), read_scenarios(f)[0])
    assert (dep.par.tp, dep.par.pp, dep.nodes, dep.per_node) == (8, 2, 2, 8)


HOSPITAL = ["--requests-per-day", "1200", "--input-len", "1500", "--output-len", "1000", "--currency", "CNY"]


def test_cost_and_recommend_price_the_same_box_the_same():
    """cost assumed 50 % utilization, recommend derived it from the demand: 110.67 vs 1,084.94 CNY
    per 1M output tokens for the same 8× H200. Both now derive it from the demand."""
    rec = CliRunner().invoke(
        app, ["recommend", *HOSPITAL, "--peak-concurrency", "16", "--on-prem", "--max-quality-rank", "1", "--json"]
    )
    assert rec.exit_code == 0, rec.output
    box = next(o for o in json.loads(rec.output)["options"] if o["label"].startswith("buy 8× h200-sxm, fp8"))
    cost = CliRunner().invoke(app, ["cost", "-w", "fp8", "-a", "h200-sxm", *HOSPITAL, "--concurrency", "16", "--json"])
    assert cost.exit_code == 0, cost.output
    c = json.loads(cost.output)
    assert c["deployment"] == box["deployment"]
    assert c["utilization"] == pytest.approx(box["utilization"], abs=5e-5)  # recommend's JSON rounds to 4 places
    assert c["cost_per_mtok_output"] == pytest.approx(box["cost_per_mtok_output"], rel=1e-6)
    # hand check: utilization = demand ÷ box speed; 1,200 × 1,000 tokens a day = 13.89 tok/s
    assert c["utilization"] == pytest.approx((1200 * 1000 / 86400) / c["throughput_output_tok_s"], rel=1e-3)


def test_cost_prices_no_speed_for_a_deployment_that_does_not_fit():
    """cost printed a 'calibrated' speed for FP16 R1 on 8× H100, which does not load."""
    r = CliRunner().invoke(app, ["cost", "--requests-per-day", "1000", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["fits"] is False
    assert d["throughput_output_tok_s"] is None and d["performance"] is None
    assert d["cost_per_mtok_output"] is None and d["breakeven_tokens_per_day"] is None
    assert "calibrated" not in d["labels"]["throughput"] and d["labels"]["throughput"].startswith("none")
    said = [n for n in d["notes"] if "does not run as given" in n]
    assert len(said) == 1 and "no speed" in said[0]


def test_cost_takes_the_demand_as_recommend_does():
    from dsdeploy.errors import UserError

    r = CliRunner().invoke(app, ["cost", "-w", "fp8", "-a", "h200-sxm", "--json"])
    assert isinstance(r.exception, UserError) and "--requests-per-day" in str(r.exception)


def _imports(path: Path) -> set[str]:
    """Every module a source file imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_recommend_does_not_import_the_cli():
    """planner/recommend.py imported cli/cmd_cost.py (an edge) for the cost doc."""
    assert not {m for m in _imports(SRC / "planner" / "recommend.py") if m.startswith("dsdeploy.cli")}


def test_engines_do_not_import_the_bench_client():
    """engines/options.py imported the bench client's plan readers; both now use planner/planfile.py."""
    assert not {m for m in _imports(SRC / "engines" / "options.py") if m.startswith("dsdeploy.bench")}
