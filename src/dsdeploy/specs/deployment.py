"""A deployment: model + weight format + KV dtype + hardware + parallelism + placement + engine.

`resolve_deployment` turns user-level ids into catalog objects, fills engine-neutral defaults, and
rejects layouts that cannot run, saying what must divide what. Parallelism follows the engine-
neutral definitions of the measurement schema (data/reference/measurements/SCHEMA.md "Parallelism"): GPUs in one model
instance = tp × dp_attention × pp; ep partitions the routed experts across the instance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dsdeploy.catalog import Catalog
from dsdeploy.catalog.schema import (
    PLACEMENTS,
    Accelerator,
    Cpu,
    Engine,
    KvDtype,
    Link,
    Placement,
    WeightFormat,
    is_placement,
)
from dsdeploy.errors import UserError
from dsdeploy.specs.model import ModelSpec

_DRAM_RE = re.compile(r"^(ddr4|ddr5|mrdimm|lpddr5x|lpddr5)(?:-(\d{3,5}))?(?:x(\d{1,2}))?$")


@dataclass(frozen=True)
class DramSpec:
    """Host memory: `<type>[-<MT/s>][x<channels per socket>]` (data/reference/measurements/SCHEMA.md `dram` column)."""

    type: str
    mts: float
    channels: int | None  # per socket; None = the CPU's full channel count
    mts_source: str
    bytes_per_transfer: float

    @property
    def label(self) -> str:
        ch = f"x{self.channels}" if self.channels else ""
        return f"{self.type}-{int(self.mts)}{ch}"


def parse_dram(spec: str, catalog: Catalog) -> DramSpec:
    m = _DRAM_RE.match(spec.strip().lower())
    if not m:
        raise UserError(
            f"--dram '{spec}' is not of the form <type>[-<MT/s>][x<channels per socket>] with type one of "
            "ddr4, ddr5, mrdimm, lpddr5, lpddr5x (for example ddr5-4800x8)"
        )
    typ, mts, ch = m.group(1), m.group(2), m.group(3)
    d = catalog.dram.get(typ)
    if d is None:
        raise UserError(f"--dram type '{typ}' is not in the catalog")
    return DramSpec(
        type=typ,
        mts=float(mts) if mts else d.default_mts.value,
        channels=int(ch) if ch else None,
        mts_source="stated" if mts else f"default for {typ}: {d.default_mts.source}",
        bytes_per_transfer=d.bytes_per_transfer_per_channel.value,
    )


@dataclass(frozen=True)
class Parallelism:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp_attention: int = 1

    @property
    def instance_devices(self) -> int:
        return self.tp * self.dp_attention * self.pp


# Host memory assumed when --dram-gb is not given, per CPU socket. UNCONFIRMED assumption, said in
# the plan's notes: 8 channels × one 64 GB RDIMM, the usual fill of an 8-channel server socket
# (the seed article's and KTransformers' R1 setups use 512 GB-1 TB per box).
DEFAULT_DRAM_GB_PER_SOCKET = 512.0


@dataclass(frozen=True)
class Deployment:
    model_id: str
    model: ModelSpec
    weights: WeightFormat
    kv: KvDtype
    engine: Engine
    placement: Placement
    accelerator: Accelerator | None
    per_node: int
    nodes: int
    cpu: Cpu | None
    cpu_sockets: int
    dram: DramSpec | None
    dram_gb: float | None
    par: Parallelism
    mtp: bool = False
    scale_up: Link | None = None
    host_link: Link | None = None
    scale_out: Link | None = None
    notes: tuple[str, ...] = field(default=())
    # experts-on-cpu with an engine whose accelerator-side tensors come from the model's native
    # checkpoint (catalog engine `gpu_weights = "native"`): that checkpoint's format; else None
    gpu_weights: WeightFormat | None = None

    @property
    def devices(self) -> int:
        return self.per_node * self.nodes

    @property
    def replicas(self) -> int:
        """Independent copies of the model. Only GPU placement replicates; in every other placement
        (experts on the CPU, layer split, unified memory, CPU) the devices hold one instance."""
        if self.placement != "gpu" or not self.devices:
            return 1
        return max(1, self.devices // max(1, self.par.instance_devices))

    def describe(self) -> str:
        hw = []
        if self.accelerator and self.devices:
            node = f" × {self.nodes} nodes" if self.nodes > 1 else ""
            hw.append(f"{self.per_node}× {self.accelerator.id}{node}")
        if self.cpu and self.placement in ("cpu", "experts-on-cpu", "layer-split"):
            dram = f", {self.dram_gb:g} GB {self.dram.label if self.dram else 'DRAM'}" if self.dram_gb else ""
            hw.append(f"{self.cpu_sockets}× {self.cpu.id}{dram}")
        return f"{self.model_id} {self.weights.id} on {' + '.join(hw) or 'no hardware'} ({self.placement}, {self.engine.id})"


def default_engine(fmt: WeightFormat, placement: str) -> str:
    """What a local deployer would reach for (catalog data, formats.toml `default_engine` and
    `default_engine_cpu`): GGUF → llama.cpp, AMX INT4 → KTransformers, MLX → mlx, safetensors on
    GPUs → vLLM, on the CPU → SGLang's CPU backend."""
    if placement == "cpu" and fmt.default_engine_cpu:
        return fmt.default_engine_cpu
    return fmt.default_engine


def _placement(placement: str | None, acc: Accelerator | None) -> Placement:
    """--placement, else from the hardware: no accelerator → cpu, unified memory → unified, else gpu."""
    if placement is None:
        if acc is None:
            return "cpu"
        return "unified" if acc.unified_memory else "gpu"
    if not is_placement(placement):
        raise UserError(f"unknown placement '{placement}'; choose one of {', '.join(PLACEMENTS)}")
    return placement


def _check_placement(placement: str, acc: Accelerator | None, cpu: Cpu | None, model: ModelSpec, model_id: str) -> None:
    if placement in ("gpu", "experts-on-cpu", "layer-split", "unified") and acc is None:
        raise UserError(f"placement '{placement}' needs --accelerator")
    if placement == "cpu" and cpu is None:
        raise UserError("placement 'cpu' needs --cpu (a catalog CPU id, or 'local' after `dsdeploy doctor --save`)")
    if placement == "unified" and acc is not None and not acc.unified_memory:
        raise UserError(f"placement 'unified' needs an accelerator with unified memory; {acc.id} has its own memory")
    if placement == "experts-on-cpu" and not model.is_moe:
        raise UserError(f"placement 'experts-on-cpu' needs an MoE model; {model_id} is dense (use layer-split)")


def _check_format_hardware(fmt: WeightFormat, acc: Accelerator | None) -> None:
    """A format whose kernels exist only on some architectures (formats.toml `runs_on_arch`, with
    its source) is refused elsewhere: NVFP4 needs Blackwell's FP4 tensor cores."""
    if acc is not None and not acc.unified_memory and not fmt.runs_on(acc.arch):
        archs = ", ".join(fmt.runs_on_arch or [])
        raise UserError(
            f"{fmt.id} weights do not run on {acc.id} ({acc.arch}): they need {archs} ({fmt.runs_on_source}); "
            f"choose weights that run there (`dsdeploy plan --best-format --accelerator {acc.id}` lists the best)"
        )


def _engine(catalog: Catalog, engine: str | None, fmt: WeightFormat, placement: str) -> Engine:
    eng = catalog.engine(engine or default_engine(fmt, placement))
    if placement not in eng.placements:
        raise UserError(
            f"engine {eng.id} does not support placement '{placement}' (it supports {', '.join(eng.placements)})"
        )
    if eng.id not in fmt.engines:
        raise UserError(f"engine {eng.id} cannot load {fmt.id} weights; engines that can: {', '.join(fmt.engines)}")
    return eng


def gpu_layout(count: int, nodes: int, tp: int | None, pp: int | None, dp_attention: int | None) -> tuple[int, int]:
    """(tp, pp) for GPU placement where not given: TP over one node's GPUs (÷ dp-attention), and
    PP across the nodes when one stage fills a node; else one stage."""
    tp = tp or (count if not dp_attention else max(1, count // dp_attention))
    pp = pp or (nodes if tp * (dp_attention or 1) == count else 1)
    return tp, pp


def _check_gpu_instance(par: Parallelism, devices: int, notes: list[str]) -> None:
    inst = par.instance_devices
    if inst > devices:
        raise UserError(
            f"tp × dp-attention × pp = {par.tp} × {par.dp_attention} × {par.pp} = {inst} GPUs, "
            f"but the deployment has {devices}; they must multiply to the GPU count (or divide it)"
        )
    if devices % inst:
        raise UserError(
            f"tp × dp-attention × pp = {inst} must divide the GPU count {devices} (each replica is one instance)"
        )
    if devices // inst > 1:
        notes.append(f"{devices // inst} independent replicas of a {inst}-GPU instance")


def _check_model_split(par: Parallelism, model: ModelSpec, model_id: str, placement: str) -> None:
    """What the model's shapes require of tp, ep and pp."""
    if model.heads % par.tp:
        raise UserError(f"tp={par.tp} must divide the attention heads ({model.heads} in {model_id})")
    if model.vocab % par.tp:
        raise UserError(f"tp={par.tp} must divide the vocabulary ({model.vocab} in {model_id})")
    if model.attention == "gqa" and par.tp > model.kv_heads and par.tp % model.kv_heads:
        raise UserError(f"tp={par.tp} must be a multiple of the KV heads ({model.kv_heads}) when it exceeds them")
    if par.ep > 1:
        if not model.is_moe:
            raise UserError(f"ep={par.ep} needs an MoE model; {model_id} is dense")
        if model.n_routed_experts % par.ep:
            raise UserError(f"ep={par.ep} must divide the routed experts ({model.n_routed_experts} in {model_id})")
        if placement == "gpu" and par.ep > par.tp * par.dp_attention:
            raise UserError(
                f"ep={par.ep} cannot exceed the GPUs of one stage (tp × dp-attention = {par.tp * par.dp_attention})"
            )
    if par.pp > model.layers:
        raise UserError(f"pp={par.pp} exceeds the model's {model.layers} layers")


def _parallelism(
    placement: str,
    count: int,
    nodes: int,
    tp: int | None,
    pp: int | None,
    ep: int | None,
    dp_attention: int | None,
    notes: list[str],
) -> Parallelism:
    if placement == "gpu":
        tp, pp = gpu_layout(count, nodes, tp, pp, dp_attention)
    par = Parallelism(tp=tp or 1, pp=pp or 1, ep=ep or 1, dp_attention=dp_attention or 1)
    for name, v in (("tp", par.tp), ("pp", par.pp), ("ep", par.ep), ("dp-attention", par.dp_attention)):
        if v < 1:
            raise UserError(f"--{name} must be ≥ 1")
    if placement == "gpu":
        _check_gpu_instance(par, count * nodes, notes)
    return par


def _host_memory(
    placement: str, cpu: Cpu | None, cpu_sockets: int, dram_gb: float | None, notes: list[str]
) -> float | None:
    if placement not in ("cpu", "experts-on-cpu", "layer-split"):
        return dram_gb
    if cpu is None:
        notes.append("no --cpu given: host memory bandwidth is unknown; assuming a dual-channel DDR5-4800 desktop")
    if dram_gb is None:
        measured = cpu.max_dram_gb if cpu is not None else None
        if measured is not None and measured.source.startswith("measured"):
            # `doctor --save` stores the installed RAM (MemTotal) per socket: use what this machine has
            dram_gb = measured.value * cpu_sockets
            notes.append(f"no --dram-gb given: {dram_gb:,.1f} GB of host memory ({measured.source}, MemTotal)")
        else:
            dram_gb = DEFAULT_DRAM_GB_PER_SOCKET * cpu_sockets
            notes.append(f"no --dram-gb given: assuming {dram_gb:g} GB of host memory")
    return dram_gb


def _links(catalog: Catalog, acc: Accelerator | None, nodes: int, scale_out: str | None) -> tuple:
    """(scale-up, host, scale-out) links: the accelerator's, and --scale-out (default ib-ndr across nodes)."""
    scale_up = catalog.link(acc.scale_up_link) if acc and acc.scale_up_link else None
    host = catalog.link(acc.host_link) if acc and acc.host_link else None
    if scale_out:
        so = catalog.link(scale_out)
        if so.kind != "scale-out":
            nets = ", ".join(k for k, v in catalog.links.items() if v.kind == "scale-out")
            raise UserError(f"--network {so.id} is a {so.kind} link, not an inter-node fabric; choose one of {nets}")
        return scale_up, host, so
    return scale_up, host, (catalog.link("ib-ndr") if nodes > 1 and "ib-ndr" in catalog.links else None)


def _gpu_weights(
    catalog: Catalog, model_id: str, fmt: WeightFormat, eng: Engine, placement: str, notes: list[str]
) -> WeightFormat | None:
    """experts-on-cpu with an engine that loads the accelerator side from the native checkpoint."""
    if placement != "experts-on-cpu" or eng.gpu_weights != "native" or model_id not in catalog.models:
        return None
    native = catalog.format(catalog.models[model_id].native_weights)
    if native.id == fmt.id:
        return None
    notes.append(
        f"{eng.id} loads the accelerator-side tensors from the native {native.id} checkpoint, "
        f"not from the {fmt.id} weights (those hold the CPU experts)"
    )
    return native


def resolve_deployment(
    catalog: Catalog,
    model_id: str,
    model: ModelSpec,
    weights: str,
    kv_dtype: str = "bf16",
    accelerator: str | None = None,
    count: int = 0,
    nodes: int = 1,
    engine: str | None = None,
    placement: str | None = None,
    tp: int | None = None,
    pp: int | None = None,
    ep: int | None = None,
    dp_attention: int | None = None,
    cpu: str | None = None,
    cpu_sockets: int = 1,
    dram: str | None = None,
    dram_gb: float | None = None,
    mtp: bool = False,
    scale_out: str | None = None,
) -> Deployment:
    notes: list[str] = []
    fmt = catalog.format(weights)
    kv = catalog.kv_dtype(kv_dtype)
    acc = catalog.accelerator(accelerator) if accelerator else None
    cpu_obj = catalog.cpu(cpu) if cpu else None
    if count < 0 or nodes < 1 or cpu_sockets < 1:
        raise UserError("--count must be ≥ 0, --nodes ≥ 1 and --cpu-sockets ≥ 1")
    if acc is not None and count == 0:
        count = 1
    if acc is None and count:
        raise UserError("--count needs --accelerator")
    placement = _placement(placement, acc)
    _check_placement(placement, acc, cpu_obj, model, model_id)
    if placement == "cpu":
        count, acc = 0, None
    _check_format_hardware(fmt, acc)
    eng = _engine(catalog, engine, fmt, placement)
    par = _parallelism(placement, count, nodes, tp, pp, ep, dp_attention, notes)
    _check_model_split(par, model, model_id, placement)
    if mtp and not model.mtp_layers:
        raise UserError(f"{model_id} has no MTP module; drop --mtp")
    dram_spec = parse_dram(dram, catalog) if dram else None
    dram_gb = _host_memory(placement, cpu_obj, cpu_sockets, dram_gb, notes)
    scale_up, host, so = _links(catalog, acc, nodes, scale_out)
    gpu_fmt = _gpu_weights(catalog, model_id, fmt, eng, placement, notes)
    return Deployment(
        model_id=model_id,
        model=model,
        weights=fmt,
        kv=kv,
        engine=eng,
        placement=placement,
        accelerator=acc,
        per_node=count,
        nodes=nodes,
        cpu=cpu_obj,
        cpu_sockets=cpu_sockets,
        dram=dram_spec,
        dram_gb=dram_gb,
        par=par,
        mtp=mtp,
        scale_up=scale_up,
        host_link=host,
        scale_out=so,
        notes=tuple(notes),
        gpu_weights=gpu_fmt,
    )
