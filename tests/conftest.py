"""Shared fixtures.

`tiny_server` starts the real `dsdeploy serve` CLI (a subprocess) on a free loopback port with an
API key, serving the bundled tiny model, and yields an object with `.base_url`
("http://127.0.0.1:PORT", no /v1) and `.api_key`. It is session-scoped; tests that need other
limits use `serve_factory(*extra_args, env={...})`. Both skip when llama_cpp isn't importable.

Native engine code never runs in the pytest process: servers are subprocesses, and direct
llama.cpp/torch calls go through `_isolate.run_isolated` (a child process per call).

Set DSDEPLOY_TEST_GGUF to serve another GGUF file instead of the tiny model.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_model_path() -> Path:
    override = os.environ.get("DSDEPLOY_TEST_GGUF")
    if override:
        return Path(override)
    from dsdeploy.tinymodel import default_gguf_path

    return Path(default_gguf_path())


@dataclass
class ServerHandle:
    base_url: str
    api_key: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    argv: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(
    *extra: str, api_key: str | None = None, timeout: float = 120.0, env: dict[str, str] | None = None
) -> ServerHandle:
    """Start `dsdeploy serve` and wait until /health answers 200. `env`: extra environment
    variables for the server (and so its engine workers)."""
    import httpx
    from _isolate import require_module

    require_module("llama_cpp", "llama-cpp-python is not installed (pip install 'dsdeploy[llama]')")
    model = serve_model_path()
    if not model.exists():
        pytest.fail(f"model for the serve tests is missing: {model}")
    key = api_key or "sk-test-" + secrets.token_hex(8)
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "dsdeploy.cli.main",
        "serve",
        "--model",
        str(model),
        "--served-model-name",
        "tiny-deepseek",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        key,
        *extra,
    ]
    fd, log_name = tempfile.mkstemp(prefix="dsdeploy-serve-", suffix=".log")
    log = os.fdopen(fd, "w")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
    )
    log.close()
    handle = ServerHandle(f"http://127.0.0.1:{port}", key, port, proc, Path(log_name), argv)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"dsdeploy serve exited with {proc.returncode}:\n{handle.log()[-4000:]}")
        try:
            if httpx.get(handle.base_url + "/health", timeout=2).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            handle.stop(5)
            pytest.fail(f"dsdeploy serve not healthy after {timeout:.0f}s:\n{handle.log()[-4000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def tiny_server():
    handle = start_server("--parallel", "2", "--max-concurrency", "32")
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def serve_factory():
    started: list[ServerHandle] = []

    def factory(*extra: str, **kw) -> ServerHandle:
        h = start_server(*extra, **kw)
        started.append(h)
        return h

    yield factory
    for h in started:
        h.stop()
