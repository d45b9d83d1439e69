"""The emitted two-node vLLM recipe, run for real on one CPU machine (issue #13).

`dsdeploy deploy` emits, for vLLM across two nodes: on node 0 `ray start --head`, a step that waits
until every node has joined, then `vllm serve ... --distributed-executor-backend ray`; on node 1
`ray start --block --address=HEAD:6379`. This test takes those launches from the real LaunchPlan
(tiny DeepSeek, one "GPU" per node, TP=2 and then PP=2) and runs them with two Ray nodes on loopback
addresses 127.0.0.2 and 127.0.0.3 (Ray rewrites 127.0.0.1), then asks for a chat completion with the
official `openai` client and checks with `ray list actors --detail` that each vLLM worker ran on its
own Ray node.

CPU-only substitutions, which belong to this set-up and never to an emitted GPU recipe
(shared/reference/multinode-cpu-notes.md): the `.venv-ray` copy of `.venv-vllm` with ray 2.60 and
the one-line `ray_device_key = "GPU"` platform patch (scripts/setup_vllm_ray.sh); `--num-gpus 1`
(a logical slot) on each `ray start`; `python -m vllm.entrypoints.openai.api_server --model` for
`vllm serve`; no `--gpu-memory-utilization` (VLLM_CPU_KVCACHE_SPACE sizes the KV cache).

Slow (about 2 × 1 minute) and about 5 GiB of RAM; marked `vllm`, so `-m "not vllm"` skips it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dsdeploy.engines import DeployOptions, build_launch_plan
from dsdeploy.engines.options import PlanOptions, resolve

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-ray"
PY = VENV / "bin" / "python"
HEAD, WORKER = "127.0.0.2", "127.0.0.3"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LD_PRELOAD": str(VENV / "lib" / "libiomp5.so"),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }


def _ray(*args: str, env=None, timeout=180, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(PY), "-m", "ray.scripts.scripts", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and r.returncode != 0:
        pytest.fail(f"ray {' '.join(args)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r


RAY_NODE_FLAGS = ["--num-gpus", "1", "--num-cpus", "1", "--object-store-memory", "300000000", "--disable-usage-stats"]


def _emitted(layout: dict):
    from dsdeploy.tinymodel import default_hf_path

    po = PlanOptions(model="dsdeploy-tiny", accelerator="h100-sxm", count=1, nodes=2, engine="vllm", **layout)
    dep, mem, wl = resolve(po)
    plan = build_launch_plan(dep, mem, wl, DeployOptions(model_path=str(default_hf_path()), head_addr=HEAD))
    return plan


def _server_argv(argv: list[str], port: int) -> list[str]:
    """`vllm serve MODEL flags...` → the vllm-cpu module form, on a free port, without the GPU
    memory fraction."""
    assert argv[:2] == ["vllm", "serve"]
    out = [str(PY), "-m", "vllm.entrypoints.openai.api_server", "--model", argv[2]]
    rest = argv[3:]
    i = 0
    while i < len(rest):
        flag = rest[i]
        if flag == "--gpu-memory-utilization":
            i += 2
            continue
        if flag == "--port":
            out += ["--port", str(port)]
            i += 2
            continue
        out.append(flag)
        i += 1
    return out


@pytest.fixture(scope="module")
def ray_venv():
    if not (PY.exists() and (VENV / "lib").exists()):
        pytest.skip("no .venv-ray (bash scripts/setup_vllm_ray.sh makes it from .venv-vllm)")
    return PY


@pytest.mark.parametrize("layout", [{"tp": 2}, {"pp": 2}], ids=["tp2", "pp2"])
def test_two_node_vllm_recipe_serves(ray_venv, layout, tmp_path):
    import httpx
    import openai

    plan = _emitted(layout)
    node0, node1 = plan.for_node(0), plan.for_node(1)
    assert [la.role for la in node0] == ["ray-head", "ray-wait", "server"]
    assert [la.role for la in node1] == ["ray-worker"]
    head, wait, server = node0
    assert head.argv[:3] == ["ray", "start", "--head"] and f"--node-ip-address={HEAD}" in head.argv
    flag = "--tensor-parallel-size" if "tp" in layout else "--pipeline-parallel-size"
    assert server.argv[server.argv.index(flag) + 1] == "2"

    ray_port = _free_port(HEAD)
    dash = _free_port()
    head_argv = [a if not a.startswith("--port=") else f"--port={ray_port}" for a in head.argv[1:]]
    worker_argv = [a if not a.startswith("--address=") else f"--address={HEAD}:{ray_port}" for a in node1[0].argv[1:]]
    env0 = _env(**head.env)
    _ray("stop", "--force", check=False)
    worker = None
    srv = None
    log = tmp_path / "vllm.log"
    try:
        _ray(*head_argv, *RAY_NODE_FLAGS, "--dashboard-port", str(dash), env=env0)
        # node 1 as emitted (`ray start --block --address=HEAD:PORT`), on its own loopback address
        worker = subprocess.Popen(
            [str(PY), "-m", "ray.scripts.scripts", *worker_argv, "--node-ip-address", WORKER, *RAY_NODE_FLAGS],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # node 0's emitted wait step, as it is, with this venv's python
        r = subprocess.run(
            [str(PY), *wait.argv[1:]],
            env=_env(RAY_ADDRESS=f"{HEAD}:{ray_port}"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0 and "2 Ray nodes alive" in r.stdout, r.stderr[-3000:]

        port = _free_port()
        argv = _server_argv(server.argv, port)
        with log.open("w") as fh:
            srv = subprocess.Popen(
                argv,
                env=_env(**server.env, RAY_ADDRESS=f"{HEAD}:{ray_port}"),
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while True:
            if srv.poll() is not None:
                pytest.fail(f"vLLM exited {srv.returncode}:\n{log.read_text()[-5000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM not ready in 600 s:\n{log.read_text()[-5000:]}")
            time.sleep(2)

        client = openai.OpenAI(base_url=base + "/v1", api_key="none")
        chat = client.chat.completions.create(
            model=server.argv[server.argv.index("--served-model-name") + 1],
            messages=[{"role": "user", "content": "def add(a, b):"}],
            max_tokens=16,
            temperature=0,
        )
        assert chat.choices[0].message.content
        assert chat.usage.completion_tokens > 0

        # each vLLM worker on its own Ray node
        actors = _ray("list", "actors", "--detail", "--format", "json", "--address", f"http://127.0.0.1:{dash}")
        rows = json.loads(actors.stdout)
        workers = [a for a in rows if a.get("state") == "ALIVE" and "Worker" in (a.get("class_name") or "")]
        assert len(workers) == 2, [(a.get("class_name"), a.get("state")) for a in rows]
        assert len({a["node_id"] for a in workers}) == 2, workers
        nodes = json.loads(_ray("list", "nodes", "--format", "json", "--address", f"http://127.0.0.1:{dash}").stdout)
        ips = {n["node_id"]: n["node_ip"] for n in nodes}
        assert {ips[a["node_id"]] for a in workers} == {HEAD, WORKER}
    finally:
        if srv is not None and srv.poll() is None:
            os.killpg(srv.pid, signal.SIGTERM)
            try:
                srv.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(srv.pid, signal.SIGKILL)
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        _ray("stop", "--force", check=False, timeout=120)
