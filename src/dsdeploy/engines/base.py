"""What every engine adapter returns, and the refusals all of them share.

An adapter turns a resolved `Deployment`, its `MemoryPlan` and the `Workload` into a `LaunchPlan`:
the processes to start (argv + environment), on which node, in which order. The emitters in
`dsdeploy.engines.emit` render a LaunchPlan as a shell script, docker compose, systemd units or
Kubernetes manifests. Adapters do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import GB, MemoryPlan, Workload
from dsdeploy.specs.deployment import Deployment

HEAD_PLACEHOLDER = "HEAD_NODE_IP"


@dataclass
class Launch:
    """One process: its argv and the environment it needs on top of the inherited one."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    node_rank: int = 0
    role: str = "server"  # server | worker | ray-head | ray-worker
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


def context_len(wl: Workload) -> int:
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
