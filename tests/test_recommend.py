"""`recommend`: options across the catalog, constraints, the article's alternatives, speed."""

import pytest

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.prices import PriceBook, load_prices
from dsdeploy.errors import UserError
from dsdeploy.planner.bom import CostOptions
from dsdeploy.planner.recommend import Demand, recommend
from dsdeploy.specs.model import load_model_spec


@pytest.fixture(scope="module")
def ctx():
    return load_catalog(), load_model_spec("deepseek-r1"), PriceBook.build(load_prices(), "USD")


def run(ctx, **kw):
    cat, spec, book = ctx
    d = Demand.build(**{"requests_per_day": 2000, "input_len": 1500, "output_len": 1000, "peak_concurrency": 20, **kw})
    return recommend(cat, "deepseek-r1", spec, d, book, CostOptions())


def test_kinds_and_article_options(ctx):
    r = run(ctx)
    kinds = {o["kind"] for o in r["options"]}
    assert {"buy", "rent", "api", "hybrid", "article"} <= kinds
    labels = " | ".join(o["label"] for o in r["options"] if o["kind"] == "article")
    for needle in (
        "4-bit",
        "distilled model r1-distill-qwen-32b",
        "distilled model r1-distill-llama-70b",
        "LoRA",
        "cloud–edge",
    ):
        assert needle in labels
    four = next(o for o in r["options"] if "4-bit" in o["label"])
    assert "167 GB" in four["reasons"][0] and "A100" in four["reasons"][0]
    assert r["options"][0]["feasible"]
    for o in r["options"]:
        assert o["reasons"]


def test_on_prem_rules_out_cloud(ctx):
    r = run(ctx, on_prem=True)
    for o in r["options"]:
        if o["kind"] in ("api", "rent", "hybrid"):
            assert not o["feasible"]
    assert r["options"][0]["kind"] == "buy"


def test_api_wins_without_constraints_at_low_volume(ctx):
    r = run(ctx)
    assert r["options"][0]["kind"] == "api"


def test_slo_and_budget(ctx):
    r = run(ctx, on_prem=True, tpot_ms=0.001)
    assert all(not o["feasible"] for o in r["options"] if o["kind"] == "buy")
    r = run(ctx, on_prem=True, budget=1000)
    assert all(not o["feasible"] for o in r["options"] if o["kind"] == "buy")


def test_demand_validation():
    with pytest.raises(UserError):
        Demand.build(input_len=10, output_len=10, peak_concurrency=1)
    with pytest.raises(UserError):
        Demand.build(requests_per_day=1, tokens_per_day=1, input_len=10, output_len=10, peak_concurrency=1)
    d = Demand.build(tokens_per_day=2000, input_len=500, output_len=500, peak_concurrency=1)
    assert d.requests_per_day == 2
