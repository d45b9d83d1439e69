"""`dsdeploy report --finetune`: the training memory stack per GPU carries `dsdeploy finetune --json`'s
numbers for the same options, drawn with the report's stacked-bar code, with a table and the verdict.
No browser: the numbers are read from the page's data-* attributes."""

from __future__ import annotations

import json

import pytest
from report_helpers import Elements, cli

from dsdeploy.reports.html import FT_MEMORY_PARTS

CASES = [
    # fits: LoRA on a dense 32B distill, 4 × A100 80 GB
    ["-m", "r1-distill-qwen-32b", "--method", "lora", "-a", "a100-sxm-80g", "-n", "4", "--seq-len", "4096"],
    # does not fit: full fine-tuning of R1 on one 8 × H100 node
    ["--method", "full", "-a", "h100-sxm", "-n", "8"],
]


def _ft_json(monkeypatch, capsys, args: list[str]) -> dict:
    code, out, err = cli(monkeypatch, capsys, "finetune", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _chart(page: Elements, chart_id: str) -> list[tuple[str, dict[str, str]]]:
    """The start tags inside one <svg> (Elements keeps document order, not nesting)."""
    items = page.items
    i = next(n for n, (t, a) in enumerate(items) if t == "svg" and a.get("id") == chart_id)
    j = next((n for n in range(i + 1, len(items)) if items[n][0] in ("svg", "figcaption")), len(items))
    return items[i + 1 : j]


def _want(doc: dict) -> dict[str, int]:
    """Every per-GPU component of `finetune --json`'s memory, by the chart's part key."""
    m = doc["memory"]
    want = dict(m["gpu_model_states_breakdown"])
    want |= {"activations": m["gpu_activation_bytes"], "logits": m["gpu_logits_bytes"]}
    return want | {"runtime": m["gpu_overhead_bytes"], "allocator": m["gpu_allocator_reserve_bytes"]}


def _drawn(page: Elements) -> dict[str, dict]:
    """The numbers the training chart and its table carry."""
    chart = _chart(page, "ft-mem-chart")
    tds = page.find("td")
    return {
        "segments": {a["data-part"]: int(a["data-value"]) for t, a in chart if t == "rect" and a.get("class") == "seg"},
        "markers": {a["data-marker"]: int(a["data-value"]) for t, a in chart if t == "line" and "data-marker" in a},
        "bars": [a["data-device"] for t, a in chart if t == "g" and a.get("class") == "bar"],
        "cells": {a["data-ft-part"]: int(a["data-bytes"]) for a in tds if "data-ft-part" in a},
        "total": [int(a["data-ft-total"]) for a in tds if "data-ft-total" in a],
        "capacity": [int(a["data-ft-capacity"]) for a in tds if "data-ft-capacity" in a],
    }


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_training_stack_is_finetune_json(monkeypatch, capsys, tmp_path, args):
    doc = _ft_json(monkeypatch, capsys, args)
    m, cap = doc["memory"], doc["hardware"]["gpu_memory_bytes"]
    want = _want(doc)
    assert set(want) == {k for k, _, _, _ in FT_MEMORY_PARTS}  # every component the JSON gives is drawn
    assert sum(want.values()) == pytest.approx(m["gpu_bytes"], abs=len(want))  # and nothing else is in the total

    out = tmp_path / "r.html"
    code, _, err = cli(monkeypatch, capsys, "report", *args, "--finetune", "-o", str(out))
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    page = Elements(html)
    got = _drawn(page)
    assert got["segments"] == {k: v for k, v in want.items() if v > 0}  # zero parts take no width
    assert got["markers"] == {"total": m["gpu_bytes"], "capacity": cap}
    assert got["bars"] == [doc["hardware"]["accelerator"]]
    # the text alternative holds every part, the total and the capacity
    assert (got["cells"], got["total"], got["capacity"]) == (want, [m["gpu_bytes"]], [cap])
    verdict = page.find("p", id="ft-verdict")
    assert [(v["data-fits"], v["data-binding"]) for v in verdict] == [(str(doc["fits"]).lower(), doc["binding"])]
    assert f"Verdict: {doc['verdict']}." in html


def test_cases_cover_fit_and_no_fit(monkeypatch, capsys):
    fits = [_ft_json(monkeypatch, capsys, a)["fits"] for a in CASES]
    assert fits == [True, False]


def test_no_training_section_without_the_flag(monkeypatch, capsys, tmp_path):
    out = tmp_path / "r.html"
    code, _, err = cli(monkeypatch, capsys, "report", "--method", "full", "-o", str(out))
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert 'id="ft-mem-chart"' not in html and "finetune-section" not in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "foo"], "error: method 'foo' is not one of full, lora, qlora"),
        (["--drives", "0"], "error: --drives must be at least 1, got 0"),
    ],
)
def test_bad_finetune_input_is_one_message(monkeypatch, capsys, tmp_path, args, message):
    out = tmp_path / "x.html"
    code, _, ft_err = cli(monkeypatch, capsys, "finetune", *args)
    assert code == 2 and ft_err.startswith(message)
    code, _, err = cli(monkeypatch, capsys, "report", "--finetune", *args, "-o", str(out))
    assert code == 2 and err == ft_err  # the same one message as `finetune`
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
