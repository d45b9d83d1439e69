"""One options → deployment path (issue #11): every plan-taking command builds the identical
`Deployment` for the same options, and the inconsistencies that the five copies of that step
caused stay fixed.

The property test runs the real commands (Typer's CliRunner, in process) and records every
Deployment they build at the one place all of them now pass through
(`dsdeploy.planner.options.resolve_deployment`); the regression tests read the commands' own
outputs (JSON, launch-script headers), so they also describe what a user sees.
"""

from __future__ import annotations

import ast
import csv
import json
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import dsdeploy.planner.options as po
from dsdeploy.cli.main import app
from dsdeploy.planner.options import DeploymentOptions

SRC = Path(__file__).resolve().parents[1] / "src" / "dsdeploy"
CPU_SIDE = ("cpu", "experts-on-cpu", "layer-split")


# ---------------------------------------------------------------------------------- helpers
@contextmanager
def recording():
    """Every Deployment built while inside, in order."""
    calls: list = []
    real = po.resolve_deployment

    def record(*a, **kw):
        dep = real(*a, **kw)
        calls.append(dep)
        return dep

    po.resolve_deployment = record
    try:
        yield calls
    finally:
        po.resolve_deployment = real


def run(args: list[str]):
    """(the first Deployment the command built or None, the CliRunner result)."""
    with recording() as calls:
        res = CliRunner().invoke(app, args)
    return (calls[0] if calls else None), res


def flags(o: DeploymentOptions) -> list[str]:
    out: list[str] = []
    for f in fields(DeploymentOptions):
        v = getattr(o, f.name)
        if v is None or f.name in ("config", "scale_out"):
            continue
        if f.name == "mtp":
            out.append("--mtp" if v else "--no-mtp")
            continue
        out += ["--" + f.name.replace("_", "-"), str(v)]
    return out


def option_json(o: DeploymentOptions) -> dict:
    """Options as a hand-written plan file's keys (what `doctor --plan` reads)."""
    return {f.name: getattr(o, f.name) for f in fields(DeploymentOptions) if getattr(o, f.name) is not None}


ROW_COLUMNS = (
    "id", "model", "weights", "kv_dtype", "engine", "accelerator", "accelerators_per_node", "nodes", "cpu",
    "cpu_sockets", "dram", "placement", "tp", "pp", "ep", "dp_attention", "mtp", "input_len", "output_len",
    "concurrency", "metric", "value", "scope", "ambiguity", "source", "prefill_basis",
)  # fmt: skip


def synthetic_row(o: DeploymentOptions, plan_dep) -> dict[str, str]:
    """A measurement row stating these options. A row must name its model, weights, placement and
    hardware (validate never guesses them), so those are the plan's resolved values; everything
    else is the options' own (empty where they leave it to the default)."""
    s = lambda v: "" if v is None else str(v)  # noqa: E731
    return {
        "id": "synthetic",
        "model": plan_dep.model_id,
        "weights": plan_dep.weights.id,
        "kv_dtype": o.kv_dtype,
        "engine": s(o.engine),
        "accelerator": plan_dep.accelerator.id if plan_dep.accelerator else "",
        "accelerators_per_node": str(plan_dep.per_node) if plan_dep.accelerator else "",
        "nodes": str(o.nodes),
        "cpu": s(o.cpu),
        "cpu_sockets": str(o.cpu_sockets),
        "dram": s(o.dram),
        "placement": plan_dep.placement,
        "tp": s(o.tp),
        "pp": s(o.pp),
        "ep": s(o.ep),
        "dp_attention": s(o.dp_attention),
        "mtp": "1" if o.mtp else "0",
        "input_len": str(o.input_len),
        "output_len": str(o.output_len),
        "concurrency": str(o.concurrency),
        "metric": "tpot_ms",
        "value": "50",
        "scope": "core",
        "ambiguity": "none",
        "source": "synthetic",
        "prefill_basis": "",
    }


def write_row(path: Path, row: dict[str, str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_COLUMNS)
        w.writeheader()
        w.writerow(row)
    return path


@st.composite
def option_sets(draw) -> DeploymentOptions:
    model = draw(st.sampled_from(["deepseek-r1", "r1-distill-qwen-7b", None]))
    acc = draw(st.sampled_from(["h100-sxm", "h200-sxm", "a100-sxm-80g", "rtx-4090", "none", None]))
    placement = "cpu" if acc == "none" else draw(st.sampled_from([None, "gpu", "experts-on-cpu", "layer-split"]))
    gpu = placement in (None, "gpu")
    cpu_side = placement in CPU_SIDE
    moe = model != "r1-distill-qwen-7b"
    return DeploymentOptions(
        model=model,
        weights=draw(st.sampled_from([None, "fp8", "bf16", "awq-int4", "gguf-q4_k_m", "int8"])),
        kv_dtype=draw(st.sampled_from(["bf16", "fp8"])),
        accelerator=acc,
        count=None if acc == "none" else draw(st.sampled_from([None, 1, 2, 4, 8])),
        nodes=draw(st.sampled_from([1, 1, 2])) if gpu else 1,
        engine=draw(st.sampled_from([None, None, "vllm", "sglang", "llama.cpp"])),
        placement=placement,
        tp=draw(st.sampled_from([None, None, 1, 2, 4, 8])) if gpu else None,
        pp=draw(st.sampled_from([None, None, 1, 2])) if gpu else None,
        ep=draw(st.sampled_from([None, None, 2, 8])) if gpu and moe else None,
        dp_attention=draw(st.sampled_from([None, None, 2])) if gpu else None,
        cpu=draw(st.sampled_from(["epyc-9654", "xeon-6980p"] + ([] if placement == "cpu" else [None])))
        if cpu_side
        else None,
        cpu_sockets=draw(st.sampled_from([1, 2])) if cpu_side else 1,
        dram=draw(st.sampled_from([None, "ddr5-4800x12"])) if cpu_side else None,
        # measurement rows carry no host-memory size: validate reads 4096 GB for CPU-side rows
        dram_gb=4096.0 if cpu_side else None,
        mtp=draw(st.booleans()) if moe else False,
        input_len=draw(st.sampled_from([128, 1024, 4096])),
        output_len=draw(st.sampled_from([64, 1024])),
        concurrency=draw(st.sampled_from([1, 4, 16])),
    )


# ---------------------------------------------------------------------------------- the property
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(o=option_sets())
def test_every_command_builds_the_same_deployment(o, tmp_path):
    plan_dep, res = run(["plan", *flags(o), "--json"])
    assume(res.exit_code == 0 and plan_dep is not None)  # options that cannot run: every command refuses
    cost_dep, _ = run(["cost", *flags(o), "--requests-per-day", "1000", "--throughput", "100", "--json"])
    deploy_dep, _ = run(["deploy", *flags(o), "--model-path", "/m", "--force"])
    pf = tmp_path / "options.json"
    pf.write_text(json.dumps(option_json(o)))
    doctor_dep, _ = run(["doctor", "--no-measure", "--json", "--plan", str(pf)])
    rows = write_row(tmp_path / "row.csv", synthetic_row(o, plan_dep))
    validate_dep, vres = run(["validate", str(rows), "--json"])
    # bench --plan reads the plan `dsdeploy plan --json` wrote, through the same reader as doctor --plan
    from dsdeploy.bench.record import plan_deployment

    with recording() as calls:
        plan_deployment(json.loads(res.output))
    bench_dep = calls[0]
    built = {
        "cost": cost_dep,
        "deploy": deploy_dep,
        "doctor --plan": doctor_dep,
        "validate": validate_dep,
        "bench --plan": bench_dep,
    }
    for name, dep in built.items():
        assert dep == plan_dep, (
            f"{name} built {dep and dep.describe()} {dep and dep.par}, plan built {plan_dep.describe()} {plan_dep.par}"
        )


@settings(max_examples=15, deadline=None)
@given(
    weights=st.sampled_from(["fp16", "bf16", "fp8", "awq-int4", "gguf-q4_k_m", "int8"]),
    acc=st.sampled_from(["h100-sxm", "h200-sxm", "a100-sxm-80g", "h20"]),
    count=st.sampled_from([1, 4, 8]),
    nodes=st.sampled_from([1, 2]),
)
def test_seed_check_builds_what_plan_builds(weights, acc, count, nodes):
    from dsdeploy.catalog import load_catalog
    from dsdeploy.errors import UserError
    from dsdeploy.planner.seedcheck import evaluate_r1

    plan_dep, res = run(["plan", "-w", weights, "-a", acc, "-n", str(count), "--nodes", str(nodes), "--json"])
    assume(res.exit_code == 0 and plan_dep is not None)
    with recording() as calls:
        try:
            evaluate_r1(load_catalog(), weights, acc, count, nodes)
        except UserError:  # pragma: no cover - plan built it, so seed-check must too
            pass
    assert calls and calls[0] == plan_dep


# ---------------------------------------------------------------------------------- regressions
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
    inside each node and PP=2 across them."""
    o = DeploymentOptions(weights="fp8", accelerator="h100-sxm", count=8, nodes=2)
    plan_dep, _ = run(["plan", *flags(o), "--json"])
    rows = write_row(tmp_path / "r.csv", synthetic_row(o, plan_dep))
    validate_dep, _ = run(["validate", str(rows), "--json"])
    assert (plan_dep.par.tp, plan_dep.par.pp) == (8, 2)
    assert (validate_dep.par.tp, validate_dep.par.pp) == (8, 2)


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
    assert c["utilization"] == pytest.approx(box["utilization"], rel=1e-3)
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
