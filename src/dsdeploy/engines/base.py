"""What every engine adapter returns, and the refusals all of them share.

An adapter turns a resolved `Deployment`, its `MemoryPlan` and the `Workload` into a `LaunchPlan`:
the processes to start (argv + environment), on which node, in which order. The emitters in
`dsdeploy.engines.emit` render a LaunchPlan as a shell script, docker compose, systemd units or
Kubernetes manifests. Adapters do no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import GB, MemoryPlan, Workload
from dsdeploy.specs.deployment import Deployment

HEAD_PLACEHOLDER = "HEAD_NODE_IP"
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def is_ip_address(value: str) -> bool:
    """An IPv4 or IPv6 address (not a DNS name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_address(value: str, flag: str) -> str:
    """An IPv4/IPv6 address or a DNS name (RFC 1123 labels), else one clear refusal: the value is
    written into shell scripts, compose files and manifests, so nothing else may pass."""
    if is_ip_address(value):
        return value
    labels = value.rstrip(".").split(".")
    if 0 < len(value) <= 253 and all(_HOST_LABEL.match(x) for x in labels) and not labels[-1].isdigit():
        return value
    raise UserError(f"{flag} must be an IP address or a host name (letters, digits, '-' and '.'), got {value!r}")


@dataclass
class Launch:
    """One process: its argv and the environment it needs on top of the inherited one."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    node_rank: int = 0
    role: str = "server"  # server | worker | ray-head | ray-worker | ray-wait
    # True for a process that daemonizes and returns (e.g. `ray start --head`) and must run
    # before the next one on the same node.
    setup: bool = False


@dataclass
class DeployOptions:
    model_path: str
    host: str = "127.0.0.1"
    port: int = 8000
    head_addr: str | None = None  # multi-node: address of node 0 (IP or DNS name)
    served_name: str | None = None
    cpu_weights_path: str | None = None  # KTransformers: the CPU-side expert weights
    threads: int | None = None
    dist_port: int | None = None  # multi-node rendezvous port (Ray / SGLang dist-init)
    image: str | None = None
    # the engine's per-request context limit (--max-model-len / --context-length / llama.cpp's
    # per-slot -c); None = `default_max_model_len`, set by `engines.build_launch_plan`
    max_model_len: int | None = None
    # flags that make the engine load the checkpoint in the planned format (`weight_source`), set by
    # `engines.build_launch_plan`
    weights_flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not str(self.model_path).strip():
            raise UserError(
                "--model-path is empty: give the checkpoint folder (or the GGUF file) the engine should load, "
                "as it is on the serving machine"
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise UserError(f"--max-model-len must be at least 1; got {self.max_model_len}")


@dataclass
class LaunchPlan:
    engine: str
    launches: list[Launch]
    nodes: int
    gpus_per_node: int
    port: int
    model_path: str
    image: str
    checked_against: str
    notes: list[str] = field(default_factory=list)
    extra_mounts: list[str] = field(default_factory=list)
    uses_gpu: bool = True
    gpu_vendor: str = "nvidia"  # nvidia | amd | apple: which devices a container must be given
    # the inter-node fabric a multi-node plan expects (named in its header and k8s resources)
    fabric: str | None = None

    def for_node(self, rank: int) -> list[Launch]:
        return [l for l in self.launches if l.node_rank == rank]


# ------------------------------------------------------------------------------- shared checks
def require_fits(mem: MemoryPlan, force: bool = False) -> None:
    if not mem.fits and not force:
        raise UserError(
            f"the memory plan says this deployment will not run: {mem.reason} (pass --force to emit it anyway)"
        )


def has_compute(dep: Deployment, dtype: str) -> bool:
    return dep.accelerator is not None and dtype in dep.accelerator.tflops


def is_blackwell(dep: Deployment) -> bool:
    return dep.accelerator is not None and "blackwell" in dep.accelerator.arch


def refuse_nvfp4_off_blackwell(dep: Deployment, engine: str) -> None:
    if dep.weights.id == "nvfp4" and not is_blackwell(dep):
        acc = dep.accelerator.id if dep.accelerator else "the CPU"
        raise UserError(
            f"{engine} cannot run nvfp4 weights on {acc}: NVFP4 GEMMs need Blackwell FP4 tensor cores "
            "(B200/B300/GB200/GB300/RTX 50xx); use fp8 or awq-int4 weights on this hardware"
        )


def refuse_mla_kv(dep: Deployment, engine: str, allowed: tuple[str, ...]) -> None:
    if dep.kv.id not in allowed:
        raise UserError(
            f"{engine} has no '{dep.kv.id}' KV cache; it offers {', '.join(allowed)} (pass --kv-dtype one of those)"
        )


def require_single_node(dep: Deployment, engine: str, how: str) -> None:
    if dep.nodes > 1:
        raise UserError(f"{engine} does not run one model across {dep.nodes} nodes here: {how}")


def gpus_of_instance(dep: Deployment) -> int:
    return dep.par.instance_devices


def replica_note(dep: Deployment) -> list[str]:
    """A deployment with more GPUs than one instance runs independent replicas."""
    inst = gpus_of_instance(dep)
    if dep.placement != "gpu" or dep.replicas <= 1:
        return []
    if dep.nodes > 1 and inst > dep.per_node:
        raise UserError(
            f"{dep.replicas} replicas of a {inst}-GPU instance spread over {dep.nodes} nodes: dsdeploy emits one "
            "multi-node instance at a time; use --nodes for one instance, or deploy each replica separately"
        )
    per_node = dep.per_node // inst
    sets = [",".join(str(i * inst + j) for j in range(inst)) for i in range(per_node)]
    return [
        f"{dep.replicas} replicas of a {inst}-GPU instance: start this command {per_node}× per node, once per GPU set "
        f"(CUDA_VISIBLE_DEVICES={' / '.join(sets)}) on its own --port, and balance requests across them"
    ]


@dataclass(frozen=True)
class WeightSource:
    """Where the planned weight format comes from: flags for vLLM/SGLang and what to tell the user."""

    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def weight_source(dep: Deployment, native: str, checkpoint_repo: str = "", checkpoint_source: str = "") -> WeightSource:
    """The checkpoint behind `dep.weights` when it is not the model's official format `native`.

    - FP8 from a BF16/FP16 checkpoint: vLLM and SGLang quantize at load with `--quantization fp8`
      (docs.vllm.ai features/quantization/fp8 "online dynamic quantization"; SGLang's
      `--quantization fp8`), so the download is the BF16 checkpoint, twice the FP8 size.
    - BF16/FP16 from DeepSeek's FP8 checkpoint: convert first with DeepSeek-V3's
      `inference/fp8_cast_bf16.py`.
    - Other formats (AWQ, NVFP4, INT8...): a pre-quantized checkpoint (catalog checkpoints.toml), or
      how to make one with llm-compressor."""
    w = dep.weights.id
    if w == native or w.startswith("gguf-") or dep.engine.id not in ("vllm", "sglang"):
        return WeightSource()
    if w == "fp8" and native in ("bf16", "fp16"):
        return WeightSource(
            flags=("--quantization", "fp8"),
            notes=(
                f"{dep.model_id}'s official checkpoint is {native.upper()}: --model-path points at it and the engine "
                "quantizes to FP8 at load (--quantization fp8); the download and disk need the BF16 size, twice the FP8 weights",
            ),
        )
    if w in ("bf16", "fp16") and native == "fp8":
        return WeightSource(
            notes=(
                f"{dep.model_id}'s official checkpoint is FP8: convert it to {w.upper()} first with fp8_cast_bf16.py "
                "from deepseek-ai/DeepSeek-V3 (inference/), and point --model-path at the converted folder",
            )
        )
    if checkpoint_repo:
        return WeightSource(
            notes=(
                f"--model-path: a local copy of the pre-quantized {w} checkpoint {checkpoint_repo} ({checkpoint_source})",
            )
        )
    return WeightSource(
        notes=(
            f"no published {w} checkpoint of {dep.model_id} is in dsdeploy's catalog: make one from the official "
            f"{native.upper()} checkpoint with llm-compressor (github.com/vllm-project/llm-compressor, e.g. its "
            "W4A16/AWQ or W8A8 recipes) and point --model-path at the result; the engine reads the quantization from "
            "the checkpoint's config",
        )
    )


def model_limit(dep: Deployment) -> int:
    """The longest sequence the model's position encoding covers: config `max_position_embeddings`
    (R1: 163,840; deepseek-ai/DeepSeek-R1 config.json)."""
    return int(dep.model.max_position)


def default_max_model_len(dep: Deployment, wl: Workload, reasoning_tokens: int = 0, kv_capacity: int = 0) -> int:
    """The context limit to launch with: the workload's prompt plus the larger of its output and the
    model's reasoning budget (a reasoning model thinks before it answers: DeepSeek-R1's README sets
    "the maximum generation length ... to 32,768 tokens"), never more than the model's limit nor
    than the KV capacity of one instance (`kv_capacity` tokens; vLLM refuses a max-model-len its KV
    cache cannot hold). A workload longer than the model's limit is refused."""
    limit = model_limit(dep)
    need = int(wl.tokens_per_request)
    if limit and need > limit:
        raise UserError(
            f"the workload needs {need:,} tokens per request ({wl.input_len:,} in + {wl.output_len:,} out), more than "
            f"{dep.model_id}'s limit of {limit:,} (config max_position_embeddings); shorten --input-len/--output-len"
        )
    want = int(wl.input_len) + max(int(wl.output_len), int(reasoning_tokens))
    if limit:
        want = min(limit, want)
    if kv_capacity:
        want = min(want, max(need, int(kv_capacity)))
    return want


def check_max_model_len(dep: Deployment, wl: Workload, value: int) -> int:
    limit = model_limit(dep)
    if limit and value > limit:
        raise UserError(
            f"--max-model-len {value:,} is beyond {dep.model_id}'s limit of {limit:,} (config max_position_embeddings)"
        )
    return value


def context_len(wl: Workload, opts: DeployOptions | None = None) -> int:
    """Per-request context limit: the one `build_launch_plan` chose, else the workload's own length."""
    if opts is not None and opts.max_model_len:
        return int(opts.max_model_len)
    return int(wl.tokens_per_request)


def physical_cores(dep: Deployment) -> int | None:
    if dep.cpu is None:
        return None
    return int(dep.cpu.cores.value) * dep.cpu_sockets


def mem_summary(mem: MemoryPlan) -> str:
    """One line of the memory plan, for comments next to a command."""
    parts = [f"weights {mem.weights_bytes_total / GB:,.1f} GB total"]
    for d in mem.devices:
        parts.append(
            f"{d.name}: {d.weights_bytes / GB:,.1f} GB weights + {d.kv_bytes / GB:,.1f} GB KV of {d.usable_bytes / GB:,.1f} GB usable"
        )
    parts.append(f"KV capacity {mem.kv_capacity_tokens:,} tokens")
    return "; ".join(parts)


def model_dir_name(path: str) -> str:
    return Path(path).name or path
