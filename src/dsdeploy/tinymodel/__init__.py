"""dsdeploy's own tiny DeepSeek-V3-architecture model.

It exists to exercise the stack (tokenizer, MLA, sigmoid-routed MoE, GGUF conversion,
llama.cpp / vLLM serving, benchmarks) on a laptop CPU. It is *not* an assistant: it
was trained for a few minutes on this repository's own text and some Python source,
and its output reads like code and docs fragments.

Artifacts (built by ``scripts/build_tiny_model.py``, shipped in the package):

* ``artifacts/hf/`` -- Hugging Face folder (config.json, model.safetensors in bf16,
  tokenizer.json, tokenizer_config.json, generation_config.json);
* ``artifacts/tiny-deepseek.gguf`` -- the same weights as a llama.cpp ``deepseek2``
  GGUF (q8_0), written by :func:`dsdeploy.tinymodel.gguf_writer.convert_hf_to_gguf`.
"""

from __future__ import annotations

from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
MODEL_NAME = "dsdeploy-tiny-deepseek"

__all__ = ["ARTIFACTS_DIR", "MODEL_NAME", "default_gguf_path", "default_hf_path"]


def default_gguf_path() -> Path:
    """Path of the shipped llama.cpp GGUF (``deepseek2`` arch, q8_0)."""
    return ARTIFACTS_DIR / "tiny-deepseek.gguf"


def default_hf_path() -> Path:
    """Path of the shipped Hugging Face checkpoint folder (bf16 safetensors)."""
    return ARTIFACTS_DIR / "hf"
