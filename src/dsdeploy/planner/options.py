"""Defaults shared by every command that takes plan options (`plan`, `cost`, `recommend`,
`deploy`, `doctor`): which model, format and accelerator count a user means when they leave one out.
`dsdeploy plan`'s defaults are the seed article's scenario: DeepSeek-R1 at FP16 on 8× H100 SXM."""

from __future__ import annotations

from pathlib import Path

from dsdeploy.errors import UserError

DEFAULT_MODEL = "deepseek-r1"
DEFAULT_WEIGHTS = "fp16"
DEFAULT_ACCELERATOR = "h100-sxm"
DEFAULT_COUNT_DATACENTER = 8  # one HGX/DGX-class node

# GGUF general.file_type (llama.cpp LlamaFileType) → catalog weight format, for `--model x.gguf`
GGUF_FILE_TYPES = {
    "1": "fp16",
    "32": "bf16",
    "7": "gguf-q8_0",
    "18": "gguf-q6_k",
    "14": "gguf-q4_k_m",
    "15": "gguf-q4_k_m",
    "11": "gguf-q3_k_m",
    "12": "gguf-q3_k_m",
    "13": "gguf-q3_k_m",
    "10": "gguf-q2_k",
    "24": "gguf-ud-iq1_s",
}


def resolve_model(model: str | None, config: Path | None):
    """(model_id, ModelSpec) from --model (id, alias, config.json or .gguf) and --config."""
    from dsdeploy.catalog import load_catalog
    from dsdeploy.specs.model import load_model_spec

    if config is not None:
        spec = load_model_spec(str(config))
        if model:
            cat = load_catalog()
            try:
                return cat.model(model).id, spec
            except UserError:
                return model, spec
        return spec.name, spec
    spec = load_model_spec(model or DEFAULT_MODEL)
    return spec.name, spec


def default_weights(spec, weights: str | None, fallback: str = DEFAULT_WEIGHTS) -> str:
    """--weights if given; a GGUF's own type; else `fallback` (fp16 for plan, native for deploy)."""
    if weights:
        return weights
    if spec.gguf_file_type is not None:
        try:
            return GGUF_FILE_TYPES[str(spec.gguf_file_type)]
        except KeyError:  # e.g. 0 = all F32: no catalog format has its size
            raise UserError(
                f"this GGUF's file type ({spec.gguf_file_type}) has no weight format in the catalog; "
                "pass --weights with the closest one (e.g. --weights gguf-q4_k_m)"
            ) from None
    return fallback


def default_count(catalog, accelerator: str | None, count: int | None) -> int:
    """--count if given; else one 8-GPU node for datacenter GPUs, one device otherwise."""
    if count is not None:
        return count
    if accelerator is None:
        return 0
    acc = catalog.accelerator(accelerator)
    return DEFAULT_COUNT_DATACENTER if acc.hw_class == "datacenter-gpu" else 1
