"""Every source the repository cites can be followed from a clone (data/reference/, no ../shared).

- `facts.md §N…` citations (the catalog TOML, the models' PROVENANCE.md, and src/ and docs/ text)
  name a section of data/reference/facts.md: `§1` a `## 1.` heading, `§1a` a `### 1a.` heading,
  `§1f.7` note 7 of §1f; every `[key]` after them is a key of facts.md §7.
- Measurement ids (`R086b`, `IX0001tt`) cited in src/, docs/ and bench/ are rows of
  data/reference/measurements/public.csv or inferencex-subset.csv (a bare `R075` names the rows
  R075a, R075b, ...).
- `SCHEMA.md`, `public.csv`, `inferencex-subset.csv` and `cpu-engine-notes.md` are cited by their
  repository path (`data/reference/measurements/SCHEMA.md`, ...), those files exist, and nothing
  points at `shared/reference`.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "data" / "reference"
FACTS = REF / "facts.md"
MEASUREMENTS = REF / "measurements"
CATALOG_DATA = ROOT / "src" / "dsdeploy" / "catalog" / "data"

# "facts.md" followed by a run of §sections and [keys] ("facts.md §1a [stas-acc] [aic-b200], §5c [x]")
CITATION = re.compile(r"facts\.md((?:[\s,;]*(?:and\s+)?(?:§\s*\d+[a-z]?(?:\.\d+)?|\[[A-Za-z0-9][\w.+-]*\]))+)")
SECTION = re.compile(r"§\s*(\d+[a-z]?(?:\.\d+)?)")
KEY = re.compile(r"\[([^\]]+)\]")
MEASUREMENT_ID = re.compile(r"\b(R\d{3}[a-z]?|IX\d{4}[a-z]{2})\b")
# NVIDIA driver branches named in doctor/ (R570, R575): not measurement ids
NOT_MEASUREMENTS = {"R570", "R575"}
REFERENCE_FILE = re.compile(r"(SCHEMA\.md|public\.csv|inferencex-subset\.csv|cpu-engine-notes\.md)")


@cache
def facts_sections() -> frozenset[str]:
    """Section ids of facts.md: '1', '1a', and '1f.7' for the numbered notes under a ### heading."""
    out: set[str] = set()
    sub = ""
    for line in FACTS.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"##\s+(\d+)\.\s", line):
            out.add(m.group(1))
            sub = ""
        elif m := re.match(r"###\s+(\d+[a-z])\.\s", line):
            out.add(m.group(1))
            sub = m.group(1)
        elif sub and (m := re.match(r"(\d+)\.\s", line)):
            out.add(f"{sub}.{m.group(1)}")
    return frozenset(out)


@cache
def facts_keys() -> frozenset[str]:
    """The keys of facts.md §7's source table (`| stas-acc | ...`, `| aic-h100sxm / aic-h200 | ...`)."""
    text = FACTS.read_text(encoding="utf-8")
    sources = text[text.index("## 7. Sources") :]
    keys: set[str] = set()
    for line in sources.splitlines():
        cells = line.split("|")
        if len(cells) < 3 or set(cells[1].strip()) <= {"-"} or cells[1].strip() == "Key":
            continue
        keys.update(k.strip() for k in cells[1].split("/") if k.strip())
    return frozenset(keys)


@cache
def measurement_ids() -> frozenset[str]:
    ids: set[str] = set()
    for name in ("public.csv", "inferencex-subset.csv"):
        with (MEASUREMENTS / name).open(newline="", encoding="utf-8") as f:
            ids.update(row["id"] for row in csv.DictReader(f))
    return frozenset(ids)


def _strings(obj: object) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def catalog_texts() -> Iterator[tuple[str, str]]:
    """(where, text) for every string value of the catalog TOML and the models' PROVENANCE.md."""
    for path in sorted(CATALOG_DATA.glob("*.toml")):
        for s in _strings(tomllib.loads(path.read_text(encoding="utf-8"))):
            yield path.name, s
    prov = CATALOG_DATA / "models" / "PROVENANCE.md"
    yield "models/PROVENANCE.md", prov.read_text(encoding="utf-8")


def repo_texts(*dirs: str) -> Iterator[tuple[str, str]]:
    """(relative path, text) of the Python, TOML and Markdown files under `dirs` (no model artifacts)."""
    for d in dirs:
        base = ROOT / d
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        for p in paths:
            if p.is_file() and p.suffix in (".py", ".toml", ".md") and "artifacts" not in p.parts:
                yield p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")


def citation_problems(where: str, text: str) -> list[str]:
    problems = []
    for m in CITATION.finditer(text):
        for sec in SECTION.findall(m.group(1)):
            if sec not in facts_sections():
                problems.append(f"{where}: facts.md §{sec} is not a section of data/reference/facts.md")
        for key in KEY.findall(m.group(1)):
            if key not in facts_keys():
                problems.append(f"{where}: [{key}] is not a key in data/reference/facts.md §7")
    return problems


def test_reference_files_are_in_the_repository() -> None:
    for p in (
        FACTS,
        MEASUREMENTS / "SCHEMA.md",
        MEASUREMENTS / "public.csv",
        MEASUREMENTS / "inferencex-subset.csv",
        REF / "cpu-engine-notes.md",
    ):
        assert p.is_file(), f"{p.relative_to(ROOT)} is missing"
    # the parsers find what is there: otherwise every check below would pass on nothing
    assert {"1", "1a", "1b", "1f.7", "5c", "7"} <= facts_sections()
    assert {"stas-acc", "aic-h100sxm", "aic-h200", "lmsys-h20"} <= facts_keys()
    assert {"R001", "R075a", "IX0000tt"} <= measurement_ids()


def test_catalog_facts_citations_resolve() -> None:
    cited = 0
    problems: list[str] = []
    for where, text in catalog_texts():
        cited += len(CITATION.findall(text))
        problems += citation_problems(where, text)
    assert cited > 300, f"only {cited} facts.md citations found in the catalog: is the pattern still right?"
    assert not problems, "\n".join(problems)


def test_facts_citations_in_code_and_docs_resolve() -> None:
    problems: list[str] = []
    for where, text in repo_texts("src", "docs", "bench", "README.md"):
        problems += citation_problems(where, text)
    assert not problems, "\n".join(problems)


def test_measurement_ids_exist() -> None:
    ids = measurement_ids()
    problems = []
    for where, text in repo_texts("src", "docs", "bench", "README.md"):
        for n, line in enumerate(text.splitlines(), 1):
            for mid in MEASUREMENT_ID.findall(line):
                if (
                    mid in NOT_MEASUREMENTS
                    or mid in ids
                    or any(i.startswith(mid) and i[len(mid) :].isalpha() for i in ids)
                ):
                    continue
                problems.append(f"{where}:{n}: {mid} is not a row of public.csv or inferencex-subset.csv")
    assert not problems, "\n".join(problems)


def test_reference_files_are_cited_by_repository_path() -> None:
    problems = []
    for where, text in repo_texts("src", "docs", "bench", "README.md"):
        for n, line in enumerate(text.splitlines(), 1):
            if "shared/reference" in line:
                problems.append(f"{where}:{n}: cite the repository's copy under data/reference/, not shared/reference")
            for m in REFERENCE_FILE.finditer(line):
                path = next(REF.rglob(m.group(1))).relative_to(ROOT).as_posix()
                # a file that names the repository path once may then say the short name
                if not line[: m.end()].endswith(path) and path not in text:
                    problems.append(f"{where}:{n}: cite {m.group(1)} as {path}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("facts.md §1a [stas-acc] [aic-b200]", []),
        ("derived: 142 (facts.md §1b [holy-3090]) / 2 (facts.md §1f.2)", []),
        ("facts.md §1a, §4d", []),
        ("facts.md §9z [stas-acc]", ["facts.md §9z"]),
        ("facts.md §1f.99", ["facts.md §1f.99"]),
        ("facts.md §1a [no-such-key]", ["[no-such-key]"]),
    ],
)
def test_the_checker_catches_bad_citations(text: str, expected: list[str]) -> None:
    problems = citation_problems("t", text)
    assert len(problems) == len(expected)
    for p, e in zip(problems, expected, strict=True):
        assert e in p
