"""Fixed vocabularies are types (catalog.schema): placement follows the measurement schema, and the
catalog loader rejects a value outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.schema import PLACEMENTS, Engine, is_placement

SCHEMA = Path(__file__).resolve().parent.parent / "data" / "reference" / "measurements" / "SCHEMA.md"


def schema_vocabulary(name: str) -> list[str]:
    text = SCHEMA.read_text(encoding="utf-8")
    section = text.split(f"### Vocabulary: {name}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def test_placements_are_the_measurement_schemas():
    assert list(PLACEMENTS) == schema_vocabulary("placement")
    assert is_placement("experts-on-cpu") and not is_placement("tpu") and not is_placement(None)


def test_catalog_engines_use_known_placements_and_a_typo_is_rejected():
    engines = load_catalog().engines.values()
    assert {p for e in engines for p in e.placements} <= set(PLACEMENTS)
    vllm = load_catalog().engine("vllm").model_dump()
    with pytest.raises(ValidationError, match="placements"):
        Engine.model_validate({**vllm, "placements": ["gpu", "experts-on-gpu"]})
