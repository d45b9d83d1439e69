"""The one path from plan options to a `Deployment` (and its `Workload`).

Every command that takes plan options goes through here: `plan`, `cost`, `recommend` (its
candidates), `deploy`, `doctor --plan`, `validate` (each row), `seed-check` and `bench --plan`.
Like pvlib's `ModelChain`, `DeploymentOptions` is a thin object over procedural functions
(`build`, `workload`): it holds what the user gave and one set of defaults, the seed article's
scenario: DeepSeek-R1 at FP16 on one node of 8× H100 SXM, BF16 KV cache, 1,024 tokens in and out,
one request at a time. A default that differed between two commands would give two deployments
for the same flags; there is only this one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from dsdeploy.catalog import Catalog
from dsdeploy.errors import UserError
from dsdeploy.estimators.memory import Workload
from dsdeploy.specs.deployment import Deployment, resolve_deployment
from dsdeploy.specs.model import ModelSpec

DEFAULT_MODEL = "deepseek-r1"
DEFAULT_WEIGHTS = "fp16"
DEFAULT_ACCELERATOR = "h100-sxm"
DEFAULT_COUNT_DATACENTER = 8  # one HGX/DGX-class node


@dataclass
class DeploymentOptions:
    """Every plan option, with the one set of defaults. `None` means "the default for the rest":
    weights → a GGUF's own type, else fp16; accelerator → h100-sxm unless the placement is cpu
    ('none' for CPU only); count → 8 per node for datacenter GPUs, else 1; engine, placement and
    parallelism → what `resolve_deployment` derives (TP inside a node, PP across nodes)."""

    model: str | None = None
    weights: str | None = None
    kv_dtype: str = "bf16"
    accelerator: str | None = None
    count: int | None = None
    nodes: int = 1
    engine: str | None = None
    placement: str | None = None
    tp: int | None = None
    pp: int | None = None
    ep: int | None = None
    dp_attention: int | None = None
    cpu: str | None = None
    cpu_sockets: int = 1
    dram: str | None = None
    dram_gb: float | None = None
    mtp: bool = False
    scale_out: str | None = None
    input_len: int = 1024
    output_len: int = 1024
    concurrency: int = 1
    config: Path | None = None  # `plan --config`: the architecture from this file; model then only names it

    def deployment(self, catalog: Catalog, model: tuple[str, ModelSpec] | None = None) -> Deployment:
        return build(self, catalog, model)

    def workload(self) -> Workload:
        return workload(self)

    def with_(self, **kw: Any) -> DeploymentOptions:
        return replace(self, **kw)


# ---------------------------------------------------------------------------------- the steps
def resolve_model(model: str | None, config: Path | None, catalog: Catalog | None = None) -> tuple[str, ModelSpec]:
    """(model_id, ModelSpec) from --model (id, alias, config.json or .gguf) and --config."""
    from dsdeploy.specs.model import load_model_spec

    if config is not None:
        spec = load_model_spec(str(config))
        if model:
            if catalog is None:
                from dsdeploy.catalog import load_catalog

                catalog = load_catalog()
            try:
                return catalog.model(model).id, spec
            except UserError:
                return model, spec
        return spec.name, spec
    spec = load_model_spec(model or DEFAULT_MODEL)
    return spec.name, spec


def default_weights(spec: Any, weights: str | None, catalog: Catalog | None = None) -> str:
    """--weights if given; a GGUF's own type (catalog formats' `gguf_file_types`); else fp16, the
    seed article's."""
    if weights:
        return weights
    if spec.gguf_file_type is None:
        return DEFAULT_WEIGHTS
    if catalog is None:
        from dsdeploy.catalog import load_catalog

        catalog = load_catalog()
    try:
        return catalog.gguf_file_types()[str(spec.gguf_file_type)]
    except KeyError:  # e.g. 0 = all F32: no catalog format has its size
        raise UserError(
            f"this GGUF's file type ({spec.gguf_file_type}) has no weight format in the catalog; "
            "pass --weights with the closest one (e.g. --weights gguf-q4_k_m)"
        ) from None


def default_accelerator(catalog: Catalog, accelerator: str | None, placement: str | None) -> str | None:
    """--accelerator as a catalog id; 'none' → CPU only; not given → h100-sxm unless placement cpu."""
    acc = accelerator if accelerator is not None else (None if placement == "cpu" else DEFAULT_ACCELERATOR)
    if acc is None or acc.lower() == "none":
        return None
    return catalog.accelerator(acc).id


def default_count(catalog: Catalog, accelerator: str | None, count: int | None) -> int:
    """--count if given; else one 8-GPU node for datacenter GPUs, one device otherwise."""
    if count is not None:
        return count
    if accelerator is None:
        return 0
    acc = catalog.accelerator(accelerator)
    return DEFAULT_COUNT_DATACENTER if acc.hw_class == "datacenter-gpu" else 1


def default_engine_for(spec: ModelSpec, engine: str | None) -> str | None:
    """--engine if given; a GGUF file is served by llama.cpp; else None (the format's default)."""
    if engine is None and spec.gguf_component_bytes is not None:
        return "llama.cpp"
    return engine


def build(o: DeploymentOptions, catalog: Catalog, model: tuple[str, ModelSpec] | None = None) -> Deployment:
    """The Deployment these options describe. `model` = (id, spec) when the caller already has the
    spec (the searches); otherwise it is read from `o.model` / `o.config`."""
    model_id, spec = model or resolve_model(o.model, o.config, catalog)
    acc = default_accelerator(catalog, o.accelerator, o.placement)
    return resolve_deployment(
        catalog,
        model_id,
        spec,
        default_weights(spec, o.weights, catalog),
        kv_dtype=o.kv_dtype,
        accelerator=acc,
        count=default_count(catalog, acc, o.count),
        nodes=o.nodes,
        engine=default_engine_for(spec, o.engine),
        placement=o.placement,
        tp=o.tp,
        pp=o.pp,
        ep=o.ep,
        dp_attention=o.dp_attention,
        cpu=o.cpu,
        cpu_sockets=o.cpu_sockets,
        dram=o.dram,
        dram_gb=o.dram_gb,
        mtp=o.mtp,
        scale_out=o.scale_out,
    )


def workload(o: DeploymentOptions) -> Workload:
    """The workload these options describe; lengths ≥ 0 (≥ 1 token in all), concurrency ≥ 1."""
    for name, v, lo in (
        ("--input-len", o.input_len, 0),
        ("--output-len", o.output_len, 0),
        ("--concurrency", o.concurrency, 1),
    ):
        if v < lo:
            raise UserError(f"{name} must be ≥ {lo}, got {v}")
    if o.input_len + o.output_len < 1:
        raise UserError("--input-len + --output-len must be at least 1 token")
    return Workload(input_len=o.input_len, output_len=o.output_len, concurrency=o.concurrency)


# ---------------------------------------------------------------------------------- from a plan file
_INT_FIELDS = {
    "count",
    "nodes",
    "tp",
    "pp",
    "ep",
    "dp_attention",
    "cpu_sockets",
    "input_len",
    "output_len",
    "concurrency",
}
_NOT_FROM_FILE = {"config"}


def _check_type(where: str, k: str, v: Any) -> None:
    if k in _INT_FIELDS:
        ok, kind = isinstance(v, int) and not isinstance(v, bool), "an integer"
    elif k == "dram_gb":
        ok, kind = isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
    elif k == "mtp":
        ok, kind = isinstance(v, (bool, int)), "true or false"
    else:
        ok, kind = isinstance(v, str), "a string"
    if not ok:
        raise UserError(f"{where}: '{k}' must be {kind}, got {v!r}")


def options_from_plan(raw: dict, where: str = "plan") -> DeploymentOptions:
    """Plan options from a plan document: DeploymentOptions' own keys (a hand-written file) and/or
    a `dsdeploy plan --json` document (hardware, parallelism and workload sit in nested sections
    there). A value of the wrong type is a UserError. A plan whose hardware names no accelerator
    is CPU only (not the default accelerator)."""
    from dsdeploy.planner.planfile import deployment_from_plan, workload_from_plan

    names = {f.name for f in fields(DeploymentOptions)} - _NOT_FROM_FILE
    kw = {k: v for k, v in raw.items() if k in names and v is not None and not isinstance(v, (dict, list))}
    for k, v in deployment_from_plan(raw).items():
        kw.setdefault({"accelerators_per_node": "count"}.get(k, k), v)
    hw: dict[str, Any] = raw["hardware"] if isinstance(raw.get("hardware"), dict) else {}
    if hw.get("dram_gb") is not None:
        kw.setdefault("dram_gb", hw["dram_gb"])
    if "accelerator" in hw and hw["accelerator"] is None:
        kw.setdefault("accelerator", "none")
    if isinstance(hw.get("scale_out_link"), str):
        kw.setdefault("scale_out", hw["scale_out_link"])
    for k, v in workload_from_plan(raw).items():
        kw.setdefault(k, v)
    for k, v in kw.items():
        _check_type(where, k, v)
    if "mtp" in kw:
        kw["mtp"] = bool(kw["mtp"])
    return DeploymentOptions(**kw)


def options_from_plan_file(path: str | Path) -> DeploymentOptions:
    """`--plan FILE` (doctor, bench): plan options read from a JSON file."""
    from dsdeploy.planner.planfile import load_plan

    p = Path(path)
    return options_from_plan(load_plan(p), where=f"--plan {p}")


DEFAULTS = DeploymentOptions()  # the one set of defaults; CLI signatures read theirs from here


def options_from(kw: dict[str, Any]) -> DeploymentOptions:
    """DeploymentOptions from a command's parameters (its `locals()`): the keys that are options."""
    names = {f.name for f in fields(DeploymentOptions)}
    if kw.get("network") is not None and kw.get("scale_out") is None:  # `--network` names the scale-out link
        kw = {**kw, "scale_out": kw["network"]}
    return DeploymentOptions(**{k: v for k, v in kw.items() if k in names})
