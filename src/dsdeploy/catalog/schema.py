"""Pydantic schemas for the catalog's data files (validated at load time).

Every number in the catalog is a `Sourced` value: the value, where it comes from (a URL, a
`facts.md` citation key, or `derived: <formula>`), and whether it is UNCONFIRMED. A figure that no
source settles stays in the catalog marked `unconfirmed = true` with a stated estimate, and every
prediction that rests on it says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Fixed vocabularies (the measurement schema's, data/reference/measurements/SCHEMA.md). Ids that grow
# with the catalog (accelerators, formats, engines) are data, not types.
Placement = Literal["gpu", "experts-on-cpu", "layer-split", "cpu", "unified"]
PLACEMENTS: tuple[Placement, ...] = get_args(Placement)
HwClass = Literal["datacenter-gpu", "workstation-gpu", "consumer-gpu", "unified-soc"]


def is_placement(value: object) -> TypeGuard[Placement]:
    return value in PLACEMENTS


# The read recorders active in this context (innermost last); empty outside `record_reads`.
_RECORDERS: ContextVar[tuple[dict[int, Sourced], ...]] = ContextVar("dsdeploy_sourced_recorders", default=())


@contextmanager
def record_reads() -> Iterator[dict[int, Sourced]]:
    """Record every `Sourced` whose `.value` is read inside the block, keyed by `id()`.

    The planner activates it around an evaluation, so the plan lists the UNCONFIRMED figures it
    actually used. A context variable, not global state: concurrent evaluations (threads, asyncio
    tasks) each see only their own reads, and recorders nest."""
    reads: dict[int, Sourced] = {}
    token = _RECORDERS.set((*_RECORDERS.get(), reads))
    try:
        yield reads
    finally:
        _RECORDERS.reset(token)


class Sourced(BaseModel):
    """A number with its provenance. Reading `.value` inside `record_reads()` is recorded."""

    model_config = ConfigDict(extra="forbid")

    value: float
    source: str = Field(min_length=3)
    unconfirmed: bool = False
    note: str = ""

    @field_validator("source")
    @classmethod
    def _source_is_real(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("source must not be empty")
        return v

    def __getattribute__(self, name: str) -> Any:
        if name == "value":
            for reads in _RECORDERS.get():
                reads[id(self)] = self
        return super().__getattribute__(name)

    @property
    def label(self) -> str:
        """'spec', 'derived' or 'unconfirmed': how far to trust this number."""
        if self.unconfirmed:
            return "unconfirmed"
        return "derived" if self.source.startswith("derived") else "spec"


class Accelerator(BaseModel):
    """One accelerator (a GPU, or an SoC whose GPU/NPU reads unified memory)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    vendor: Literal["nvidia", "amd", "apple", "rockchip", "huawei", "intel", "other"]
    arch: str  # e.g. hopper, blackwell, ampere, ada, cdna3, apple-m3, grace-blackwell
    hw_class: HwClass
    unified_memory: bool = False  # True for Apple, GB10, RK3588: weights live in shared DRAM
    memory_gb: Sourced  # per device, GB = 1e9 bytes, as the vendor states it
    # What the driver reports (nvidia-smi / rocm-smi), MiB: vendors' HBM figures are binary
    # ("180 GB" B200 = 183,359 MiB = 192.3 GB), and engines size their memory pools from it.
    memory_visible_mib: Sourced | None = None
    bandwidth_gbs: Sourced  # memory bandwidth, GB/s
    # What a streaming microbenchmark (BabelStream triad, nvbench, TransferBench) measured, GB/s:
    # parts reach different shares of their spec (MI300X ~77 %, H100 ~89 %).
    bandwidth_measured_gbs: Sourced | None = None
    # Dense (never sparse) peak tensor throughput per dtype, TFLOPS (INT8 in TOPS).
    # Keys: fp32, tf32, bf16, fp16, fp8, int8, fp4. A dtype the part lacks is simply absent.
    tflops: dict[str, Sourced]
    tdp_w: Sourced
    scale_up_link: str | None = None  # id in links (nvlink3/4/5, xgmi, nvlink-h800, ...) or None
    host_link: str | None = None  # id in links (pcie4, pcie5, pcie6, nvlink-c2c, ...)
    max_unified_fraction: Sourced | None = None  # SoCs: share of memory the GPU may wire
    aliases: list[str] = []
    # GPUs that share one scale-up (NVLink / Infinity Fabric) domain, when it spans more than one
    # node: 72 for GB200/GB300 NVL72 (18 compute trays of 4 GPUs). None = the GPUs of one node.
    nvlink_domain: Sourced | None = None

    def scale_up_domain(self, gpus_per_node: int) -> int:
        """GPUs reachable over the scale-up link: the NVLink domain if stated, else one node."""
        return int(self.nvlink_domain.value) if self.nvlink_domain else gpus_per_node


class Cpu(BaseModel):
    """One CPU model (per socket figures)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    vendor: Literal["intel", "amd", "arm", "broadcom", "other"]
    cores: Sourced  # per socket
    memory_channels: Sourced  # per socket
    default_dram: str  # e.g. "ddr5-4800" (type-MT/s) as the platform supports
    bandwidth_gbs: Sourced  # peak DRAM bandwidth per socket with default_dram on all channels
    matrix_isa: Literal["amx", "avx512", "avx2", "neon", "sve"]
    # Peak per-socket matrix throughput, TFLOPS/TOPS, keys bf16 / int8 / fp32.
    tflops: dict[str, Sourced]
    tdp_w: Sourced
    max_dram_gb: Sourced | None = None  # per socket, platform maximum


class Link(BaseModel):
    """A device-to-device, host or network link. Bandwidth is per direction, per device/port."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    kind: Literal["scale-up", "host", "scale-out"]
    uni_gbs: Sourced  # GB/s per direction
    latency_us: Sourced
    # Software-level latency of one small collective (NCCL all-reduce of a few KB) across this
    # fabric, the α of the performance model's α + bytes/β. None = latency_us already is one
    # (the NVLink/PCIe entries carry aiconfigurator's empirical per-collective 10 µs).
    collective_latency_us: Sourced | None = None


class Storage(BaseModel):
    """A storage class: sequential read per drive."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    read_gbs: Sourced  # sequential read GB/s per drive


class DramType(BaseModel):
    """A DRAM type and its default transfer rate, to turn `ddr5-4800x8` into GB/s."""

    model_config = ConfigDict(extra="forbid")

    id: str  # ddr4, ddr5, mrdimm, lpddr5, lpddr5x
    default_mts: Sourced
    bytes_per_transfer_per_channel: Sourced  # 8 for a 64-bit DDR channel


class HardwareCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accelerator: list[Accelerator]
    cpu: list[Cpu]
    link: list[Link]
    storage: list[Storage]
    dram: list[DramType]


class KnownSize(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    bytes: int
    source: str
    note: str = ""


TENSOR_CLASSES = (
    "embedding",
    "lm_head",
    "attention",
    "dense_mlp",
    "shared_experts",
    "routed_experts",
    "other",
)


class SourcedInts(BaseModel):
    """A list of integer codes with their provenance (e.g. GGUF file types)."""

    model_config = ConfigDict(extra="forbid")

    value: list[int]
    source: str = Field(min_length=3)


class WeightFormat(BaseModel):
    """A weight format: bits per weight per tensor class, the compute dtype it runs in, and where
    it runs (the rules formats.toml's header describes)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    quality_rank: int
    compute: str
    compute_note: str = ""
    fallback: str | None = None
    fallback_note: str = ""
    default_engine: str
    default_engine_cpu: str | None = None  # placement cpu
    only_vendor: str | None = None  # runs only on accelerators of this vendor
    only_placement: str | None = None  # runs only in this placement
    on_cpu: bool = True  # has CPU kernels (placement cpu, or no accelerator)
    on_unified: bool = False  # runs on unified-memory SoCs
    gguf_file_types: SourcedInts | None = None  # GGUF general.file_type values of this format
    engines: list[str]
    bpw: dict[str, Sourced]
    known_sizes: list[KnownSize] = []
    # Hardware support as data: the accelerator `arch` values whose tensor cores run this format
    # (e.g. NVFP4 only on Blackwell). None = no restriction beyond `compute`/`fallback` being in the
    # accelerator's `tflops`. `runs_on_source` cites the restriction.
    runs_on_arch: list[str] | None = None
    runs_on_source: str = ""

    @model_validator(mode="after")
    def _runs_on_is_sourced(self) -> WeightFormat:
        if self.runs_on_arch is not None and len(self.runs_on_source.strip()) < 3:
            raise ValueError(f"format {self.id}: runs_on_arch needs a runs_on_source")
        return self

    def runs_on(self, arch: str) -> bool:
        """Whether the format's hardware restriction (if any) admits this accelerator arch."""
        return self.runs_on_arch is None or arch in self.runs_on_arch

    @field_validator("bpw")
    @classmethod
    def _all_classes(cls, v: dict[str, Sourced]) -> dict[str, Sourced]:
        missing = [c for c in TENSOR_CLASSES if c not in v]
        extra = [c for c in v if c not in TENSOR_CLASSES]
        if missing or extra:
            raise ValueError(f"bpw needs exactly {TENSOR_CLASSES}; missing {missing}, extra {extra}")
        return v


class KvDtype(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    bytes_per_element: Sourced


class CatalogModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    config: str  # file name in data/models/
    native_weights: str
    aliases: list[str] = []
    max_context: Sourced
    published_params_total_b: Sourced
    published_params_active_b: Sourced
    # reasoning models: the generation budget their makers evaluate with (thinking + answer)
    reasoning_tokens: Sourced | None = None
    # `plan --best-model`: 1 = most capable; models without one are not candidates (test models)
    capability_rank: Sourced | None = None


class Engine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    family: str | None = None  # engine whose calibration group this one borrows (engines.toml header)
    platforms: list[str]
    placements: list[Placement]
    policy: Literal["fraction_of_total", "explicit"]
    memory_fraction: Sourced | None = None
    context_overhead_gib: Sourced
    comm_buffers_gib: Sourced
    graph_overhead_gib: Sourced
    max_batched_tokens: Sourced
    max_num_seqs: Sourced
    # CPU matmul kernels: "amx" (SGLang's Intel CPU backend, KTransformers AMX methods) or
    # "vector" (llama.cpp-family AVX-512/AVX2/NEON dot products).
    cpu_kernels: Literal["amx", "vector"] = "vector"
    # With experts on the CPU, where the accelerator-side tensors (attention, dense and shared
    # MLPs, embeddings) come from: "same" = the deployment's weight file (llama.cpp `-ot exps=CPU`),
    # "native" = the model's own checkpoint (KTransformers + SGLang: --model is the original
    # Hugging Face checkpoint, the GGUF/AMX weights hold only the CPU experts).
    gpu_weights: Literal["same", "native"] = "same"
    gpu_weights_source: str = ""
    # What memory_fraction is a fraction of: "total" device memory (vLLM, SGLang) or the memory
    # "free" after the weights are loaded (TensorRT-LLM free_gpu_memory_fraction).
    memory_fraction_of: Literal["total", "free"] = "total"
    cpu_kernels_source: str = (
        "llama.cpp ggml-cpu quantized dot products use AVX-512 VNNI / AVX2 / NEON (ggml/src/ggml-cpu)"
    )


class Checkpoint(BaseModel):
    """A published pre-quantized checkpoint of a catalog model in a catalog weight format."""

    model_config = ConfigDict(extra="forbid")

    model: str
    weights: str
    repo: str
    source: str
    note: str = ""
