"""data/reference/measurements/extra.csv (issue 12 item 6): published measurements, each with its
source URL and a verbatim quote that carries the number; every row maps to a dsdeploy deployment."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.validate.scenarios import read_scenarios, row_deployment

EXTRA = Path(__file__).resolve().parents[1] / "data" / "reference" / "measurements" / "extra.csv"
PUBLIC = EXTRA.with_name("public.csv")


@pytest.fixture(scope="module")
def rows():
    return read_scenarios(EXTRA)


def test_same_columns_as_public_first(rows):
    with EXTRA.open(encoding="utf-8") as f, PUBLIC.open(encoding="utf-8") as g:
        extra_cols = next(csv.reader(f))
        public_cols = next(csv.reader(g))
    assert extra_cols[: len(public_cols)] == public_cols
    assert len(rows) >= 10


def test_ids_unique_and_new(rows):
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids))
    public_ids = {r.id for r in read_scenarios(PUBLIC)}
    assert not set(ids) & public_ids


def test_every_row_has_a_url_and_a_quote_with_its_number(rows):
    for r in rows:
        assert r.get("source").startswith("https://"), r.id
        quote = r.get("quote")
        assert len(quote) >= 10, r.id
        value = float(r.get("value"))
        # The number is in the quote, or (per-GPU prefill) the per-node figure it was divided from
        # (SCHEMA.md: per-node / 8 is the one conversion allowed).
        per_node = value * int(r.get("accelerators_per_node") or 1)
        numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", quote)]
        assert any(math.isclose(n, v, rel_tol=1e-4) for n in numbers for v in (value, per_node)), (r.id, value, quote)


def test_no_inferencex_rows(rows):
    for r in rows:
        assert "InferenceX" not in r.get("source"), r.id


def test_every_row_maps_to_a_deployment(rows):
    cat = load_catalog()
    for r in rows:
        dep, _, _ = row_deployment(cat, r)
        assert dep.engine.id == r.get("engine"), r.id
        if r.get("accelerator"):
            assert dep.accelerator is not None and dep.accelerator.id == r.get("accelerator"), r.id
