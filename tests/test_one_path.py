"""One options → deployment path (issue #11): every plan-taking command builds the identical
`Deployment` for the same options (the regressions for the inconsistencies that the five copies
of that step caused are in test_one_path_regressions.py).

The property test runs the real commands (Typer's CliRunner, in process) and records every
Deployment they build at the one place all of them now pass through
(`dsdeploy.planner.options.resolve_deployment`).
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import dsdeploy.planner.options as po
from dsdeploy.cli.main import app
from dsdeploy.planner.options import DeploymentOptions

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


# ---------------------------------------------------------------------------------- rules as data
def test_format_and_engine_rules_are_catalog_data():
    """default_engine, format_runs_on, the GGUF file types and the engine families read the catalog
    (formats.toml, engines.toml); the cases below follow from the formats' kernels."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.catalog.calibration import Calibration
    from dsdeploy.planner.plan import format_runs_on
    from dsdeploy.specs.deployment import default_engine

    cat = load_catalog()
    eng = {
        (f, pl): default_engine(cat.format(f), pl)
        for f, pl in [
            ("gguf-q4_k_m", "gpu"),
            ("gguf-q4_k_m", "cpu"),
            ("gguf-iq1_s_r4", "experts-on-cpu"),
            ("amx-int4", "experts-on-cpu"),
            ("mlx-4bit", "unified"),
            ("nvfp4", "gpu"),
            ("fp8", "gpu"),
            ("fp8", "cpu"),
        ]
    }
    assert eng == {
        ("gguf-q4_k_m", "gpu"): "llama.cpp",
        ("gguf-q4_k_m", "cpu"): "llama.cpp",
        ("gguf-iq1_s_r4", "experts-on-cpu"): "ik_llama.cpp",
        ("amx-int4", "experts-on-cpu"): "ktransformers",
        ("mlx-4bit", "unified"): "mlx",
        ("nvfp4", "gpu"): "trtllm",
        ("fp8", "gpu"): "vllm",
        ("fp8", "cpu"): "sglang",
    }
    assert format_runs_on(cat, "mlx-4bit", "apple-m3-ultra", "unified")
    assert not format_runs_on(cat, "mlx-4bit", "h100-sxm", "gpu")
    assert format_runs_on(cat, "amx-int4", "rtx-4090", "experts-on-cpu")
    assert not format_runs_on(cat, "amx-int4", "rtx-4090", "gpu")
    assert not format_runs_on(cat, "awq-int4", None, "cpu") and format_runs_on(cat, "gguf-q4_k_m", None, "cpu")
    assert not format_runs_on(cat, "nvfp4", "h100-sxm", "gpu")  # Hopper has no FP4 tensor cores
    assert format_runs_on(cat, "fp8", "a100-sxm-80g", "gpu")  # no FP8 cores: the BF16 fallback
    assert format_runs_on(cat, "bf16", "apple-m3-ultra", "unified")
    assert not format_runs_on(cat, "fp8", "apple-m3-ultra", "unified")
    # llama.cpp's llama_ftype: MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7, MOSTLY_Q4_K_M = 15, MOSTLY_BF16 = 32
    types = cat.gguf_file_types()
    assert (types["1"], types["7"], types["15"], types["32"]) == ("fp16", "gguf-q8_0", "gguf-q4_k_m", "bf16")
    assert "0" not in types  # all F32: no catalog format
    # the calibration's family table is the catalog's (until estimators/calibration.py reads it)
    # the calibration lookup borrows through the catalog's families, not a table in code
    assert Calibration().families == {e.id: e.family for e in cat.engines.values() if e.family}
    assert Calibration().families["trtllm"] == "sglang" and Calibration().families["ollama"] == "llama.cpp"
