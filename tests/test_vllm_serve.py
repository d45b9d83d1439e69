"""vLLM's CPU build really serves the tiny DeepSeek, launched from the argv/env that
`dsdeploy.engines.vllm.local_launch()` encodes. Slow (about 1-3 minutes to become ready).

Needs `.venv-vllm` (bash scripts/setup_vllm_cpu.sh); skipped otherwise. DSDEPLOY_TEST_HF overrides
the model folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-vllm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server():
    if not (VENV / "bin" / "python").exists():
        pytest.skip("no .venv-vllm (run: bash scripts/setup_vllm_cpu.sh)")
    engine = pytest.importorskip("dsdeploy.engines.vllm", reason="dsdeploy.engines.vllm not written yet")
    httpx = pytest.importorskip("httpx")
    from dsdeploy.tinymodel import default_hf_path

    model_dir = Path(os.environ.get("DSDEPLOY_TEST_HF") or default_hf_path())
    if not (model_dir / "config.json").exists():
        pytest.skip(f"tiny HF model missing: {model_dir}")
    port = _free_port()
    spec = engine.local_launch(model_dir, "127.0.0.1", port, "tiny-deepseek", 2048)
    env = dict(os.environ, **{k: str(v) for k, v in spec.env.items()})
    log = tempfile.NamedTemporaryFile(prefix="vllm-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(a) for a in spec.argv], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm exited {proc.returncode}:\n{Path(log.name).read_text()[-4000:]}")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm not ready after 600 s:\n{Path(log.name).read_text()[-4000:]}")
            time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_vllm_serves_tiny_model_with_openai_client(vllm_server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=vllm_server + "/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["tiny-deepseek"]
    r = client.chat.completions.create(
        model="tiny-deepseek", messages=[{"role": "user", "content": "def add(a, b):"}], max_tokens=16, temperature=0
    )
    assert r.usage.completion_tokens > 0 and isinstance(r.choices[0].message.content, str)
    chunks = list(
        client.completions.create(
            model="tiny-deepseek",
            prompt="import ",
            max_tokens=12,
            stream=True,
            extra_body={"ignore_eos": True},
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.completion_tokens == 12
