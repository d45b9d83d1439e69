"""`dsdeploy plan` / `dsdeploy model` through the real CLI entry point: defaults, JSON interface,
search modes, Markdown, and bad input (exit 2, one message, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsdeploy.cli.main import main


def cli(monkeypatch, capsys, *args):
    """Run `dsdeploy ARGS` in-process through `main()` (the console-script entry point)."""
    monkeypatch.setattr(sys, "argv", ["dsdeploy", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_subprocess(*args):
    return subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", *args], capture_output=True, text=True, timeout=180
    )


def test_default_plan_is_the_seed_scenario(monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "plan", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert (res["model"], res["weights"], res["kv_dtype"]) == ("deepseek-r1", "fp16", "bf16")
    assert res["hardware"]["accelerator"] == "h100-sxm" and res["hardware"]["devices"] == 8
    assert res["workload"] == {"input_len": 1024, "output_len": 1024, "concurrency": 1, "tokens_per_request": 2048}
    assert res["fits"] is False and res["binding"] == "weights"
    assert res["alternatives"] and all(a["fits"] for a in res["alternatives"])
    for key in (
        "weights_bytes_total",
        "per_device",
        "kv_capacity_tokens",
        "max_concurrency",
        "engine",
        "placement",
        "parallelism",
        "weights_by_component",
        "kv_bytes_per_token",
        "notes",
        "unconfirmed",
        "labels",
    ):
        assert key in res


def test_default_plan_text(monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "plan")
    assert code == 0
    for s in (
        "DOES NOT FIT",
        "Binding constraint",
        "weights",
        "KV cache",
        "activations",
        "overhead",
        "capacity",
        "usable",
        "free",
        "Alternatives that fit",
        "requests of 2,048",
    ):
        assert s in out, s


def test_every_option_is_accepted(monkeypatch, capsys):
    code, out, err = cli(
        monkeypatch,
        capsys,
        "plan",
        "--model",
        "deepseek-v3",
        "--weights",
        "fp8",
        "--kv-dtype",
        "fp8",
        "--accelerator",
        "h200-sxm",
        "--count",
        "8",
        "--nodes",
        "1",
        "--engine",
        "sglang",
        "--placement",
        "gpu",
        "--tp",
        "1",
        "--pp",
        "1",
        "--ep",
        "8",
        "--dp-attention",
        "8",
        "--cpu",
        "epyc-9654",
        "--cpu-sockets",
        "2",
        "--dram",
        "ddr5-4800x12",
        "--dram-gb",
        "1536",
        "--mtp",
        "--input-len",
        "2000",
        "--output-len",
        "500",
        "--concurrency",
        "32",
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["fits"] and res["mtp"] is True and res["engine"] == "sglang" and res["kv_dtype"] == "fp8"
    assert res["parallelism"]["dp_attention"] == 8 and res["parallelism"]["ep"] == 8
    assert res["workload"]["tokens_per_request"] == 2500 and res["kv_bytes_per_token"] == 35_136


def test_cpu_only_and_experts_on_cpu(monkeypatch, capsys):
    code, out, err = cli(
        monkeypatch,
        capsys,
        "plan",
        "--placement",
        "cpu",
        "--cpu",
        "epyc-9654",
        "--cpu-sockets",
        "2",
        "--dram-gb",
        "768",
        "--weights",
        "gguf-q4_k_m",
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["placement"] == "cpu" and res["per_device"][0]["kind"] == "host" and res["fits"]
    code, out, err = cli(
        monkeypatch,
        capsys,
        "plan",
        "--accelerator",
        "rtx-4090",
        "--placement",
        "experts-on-cpu",
        "--weights",
        "gguf-q4_k_m",
        "--cpu",
        "epyc-9654",
        "--dram-gb",
        "512",
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["hardware"]["devices"] == 1 and [d["kind"] for d in res["per_device"]] == ["accelerator", "host"]


def test_min_count_search(monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "plan", "--min-count", "--weights", "fp8", "--json")
    assert code == 0, err
    res = json.loads(out)
    byacc = {r["accelerator"]: r for r in res["results"]}
    assert byacc["h100-sxm"]["accelerators_per_node"] * byacc["h100-sxm"]["nodes"] == 16
    assert byacc["h200-sxm"]["accelerators_per_node"] * byacc["h200-sxm"]["nodes"] == 8
    code, out, _ = cli(monkeypatch, capsys, "plan", "--min-count", "--weights", "fp8")
    assert code == 0 and "h100-sxm" in out


def test_best_format_search(monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "plan", "--best-format", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["found"] and res["fits"] and res["hardware"]["devices"] == 8


def test_markdown_stdout_and_file(monkeypatch, capsys, tmp_path):
    code, out, _ = cli(monkeypatch, capsys, "plan", "--markdown")
    assert code == 0 and out.startswith("# dsdeploy plan") and "**Verdict: DOES NOT FIT**" in out
    f = tmp_path / "plan.md"
    code, out, _ = cli(monkeypatch, capsys, "plan", "--markdown", str(f))
    assert code == 0 and f.read_text().startswith("# dsdeploy plan") and "## Alternatives that fit" in f.read_text()


def test_model_json(monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "model", "deepseek-r1", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["params_total"] == 671_026_404_352
    assert s["kv_bytes_per_token"]["bf16"] == 70_272 and s["kv_bytes_per_token"]["q4_0"] == 19_764
    assert {"params_by_component", "active_by_component", "flops_per_token_decode", "architecture"} <= set(s)
    code, out, _ = cli(monkeypatch, capsys, "model", "r1-distill-qwen-7b")
    assert code == 0 and "Parameters by component" in out


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "args, needle, suggestion",
    [
        (["plan", "--model", "deepseek-r2"], "unknown model 'deepseek-r2'", "deepseek-r1"),
        (["plan", "--accelerator", "h100-sxn"], "unknown accelerator 'h100-sxn'", "h100-sxm"),
        (["plan", "--weights", "fp9"], "unknown weights format 'fp9'", "fp8"),
        (["plan", "--kv-dtype", "bf61"], "unknown kv dtype", "bf16"),
        (["plan", "--engine", "vlm"], "unknown engine 'vlm'", "vllm"),
        (["model", "deepseek-v4"], "unknown model", "deepseek-v3"),
    ],
)
def test_unknown_ids_exit_2_with_close_matches(monkeypatch, capsys, args, needle, suggestion):
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 2
    assert needle in err and "Did you mean" in err and suggestion in err.split("Known")[0]
    assert err.count("error:") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["plan", "--weights", "fp8", "--count", "3", "--tp", "3"], "tp=3 must divide the attention heads (128"),
        (
            ["plan", "--weights", "fp8", "--tp", "1", "--dp-attention", "7", "--count", "7", "--ep", "7"],
            "ep=7 must divide the routed experts (256",
        ),
        (["plan", "--tp", "16"], "must multiply to the GPU count"),
        (["plan", "--placement", "unified"], "unified memory"),
        (["plan", "--concurrency", "0"], "Invalid value for '--concurrency'"),
        (["plan", "--min-count", "--best-format"], "choose one"),
        (["plan", "--dram", "ddr9"], "--dram"),
    ],
)
def test_impossible_layouts_say_what_must_divide_what(monkeypatch, capsys, args, needle):
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 2, err
    assert needle in err and "Traceback" not in err


def test_malformed_config_names_the_field(monkeypatch, capsys, tmp_path):
    p = tmp_path / "config.json"
    p.write_text(
        json.dumps({"model_type": "deepseek_v3", "hidden_size": 7168, "num_attention_heads": 128, "vocab_size": 129280})
    )
    code, _, err = cli(monkeypatch, capsys, "plan", "--config", str(p))
    assert code == 2 and "num_hidden_layers" in err and "Traceback" not in err
    code, _, err = cli(monkeypatch, capsys, "model", str(p))
    assert code == 2 and "num_hidden_layers" in err


def test_real_binary_bad_input_has_no_traceback():
    r = cli_subprocess("plan", "--accelerator", "h100-sxn")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "h100-sxm" in r.stderr
    assert r.stderr.count("error:") == 1, r.stderr
    r = cli_subprocess("plan", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["fits"] is False


@pytest.mark.parametrize("args", [["plan", "--count", "abc"], ["plan", "--bogus"], ["model"]])
def test_usage_errors_have_no_traceback(monkeypatch, capsys, args):
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--count", "0", "-a", "h100-sxm"],
        ["plan", "--tp", "0"],
        ["plan", "--dram-gb", "-5"],
        ["plan", "--concurrency", "0"],
        ["recommend", "--top", "0"],
        ["deploy", "--model-path", "/m", "-a", "h200-sxm", "--threads", "-4"],
    ],
)
def test_out_of_range_numbers_are_refused_not_replaced(args):
    """--tp 0 used to fall back to the default and --dram-gb -5 made a '-5 GB' plan."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dsdeploy.cli.main", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout


def test_unwritable_output_is_one_message(tmp_path):
    import subprocess
    import sys

    for args in (
        ["deploy", "--model-path", "/m", "-a", "h200-sxm", "-w", "fp8", "-o", str(tmp_path / "no" / "x.sh")],
        ["validate", str(tmp_path)],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "dsdeploy.cli.main", *args], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr[-500:])
        assert "cannot" in r.stderr, r.stderr


def test_concurrency_above_kv_capacity_queues_not_does_not_fit(monkeypatch, capsys):
    """Issue 13: FP8 R1 on 8× H200 holds the weights; 600 concurrent requests of 2,048 tokens exceed the KV
    cache (a few hundred requests), so the extra requests wait: verdict 'queues', in JSON, text and Markdown."""
    args = ("plan", "--weights", "fp8", "--accelerator", "h200-sxm", "--concurrency", "600")
    code, out, err = cli(monkeypatch, capsys, *args, "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["fits"] is False and res["binding"] == "kv"
    assert res["verdict"] == "queues"
    assert 1 <= res["max_concurrency"] < 600
    assert res["reason"].startswith("queues:")
    assert res["performance"]["concurrency"] == res["max_concurrency"]  # predicted for what runs at once
    code, out, _ = cli(monkeypatch, capsys, *args)
    assert "QUEUES" in out and "DOES NOT FIT" not in out
    code, out, _ = cli(monkeypatch, capsys, *args, "--markdown")
    assert "**Verdict: QUEUES**" in out
    # the seed scenario (FP16 on 8× H100) still does not fit: not even one request
    code, out, _ = cli(monkeypatch, capsys, "plan", "--json")
    assert json.loads(out)["verdict"] == "does not fit"


def test_best_model_on_four_a100(monkeypatch, capsys):
    """Issue 13: --best-model answers for 4× A100 80 GB with its reason: full R1 (capability rank 1) in
    Q3_K_M (318.9 GB of weights, 80.0 GB per device), the best format that fits four A100s as the
    driver reports them: 4 × 81,920 MiB = 343.6 GB (llama.cpp splitting layers). Q4_K_M (~404 GB)
    does not."""
    code, out, err = cli(
        monkeypatch, capsys, "plan", "--best-model", "--accelerator", "a100-sxm-80g", "--count", "4", "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["mode"] == "best-model" and res["found"] is True and res["fits"] is True
    assert (res["model"], res["weights"]) == ("deepseek-r1", "gguf-q3_k_m")
    assert res["passed_over"] == []
    assert "capability rank 1" in res["best_model_reason"] and "gguf-q3_k_m" in res["best_model_reason"]
    code, out, _ = cli(monkeypatch, capsys, "plan", "--best-model", "--accelerator", "a100-sxm-80g", "--count", "4")
    assert code == 0 and "Best model that fits: deepseek-r1" in out


def test_best_model_on_one_rtx4090_with_256_gb_ddr5(monkeypatch, capsys):
    """One 24 GB RTX 4090 with 256 GB of DDR5: R1 runs with the routed experts in DRAM (UD-Q2_K_XL,
    ~216 GB); without the host memory the best is a distill, and the 671B models are passed over."""
    args = ("plan", "--best-model", "--accelerator", "rtx-4090", "--count", "1", "--json")
    code, out, err = cli(monkeypatch, capsys, *args, "--cpu", "epyc-9654", "--dram-gb", "256")
    assert code == 0, err
    res = json.loads(out)
    assert res["found"] and res["model"] == "deepseek-r1" and res["placement"] == "experts-on-cpu"
    assert res["hardware"]["dram_gb"] == 256
    code, out, err = cli(monkeypatch, capsys, *args)
    res = json.loads(out)
    assert res["found"] and res["model"].startswith("r1-distill-")
    assert {p["model"] for p in res["passed_over"]} >= {"deepseek-r1", "deepseek-v3"}
    assert all(p["why"] == "no catalog weight format fits" for p in res["passed_over"][:4])
    code, out, err = cli(monkeypatch, capsys, "plan", "--ttft-ms", "100")
    assert code == 2 and "--best-model" in err
