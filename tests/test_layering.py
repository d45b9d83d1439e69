"""The layer rules of docs/architecture.md ("Layer rules"), checked on the source.

Every module under src/dsdeploy is parsed with `ast` (nothing is imported), mapped to its layer,
and every import it makes is checked: module-level imports, imports inside functions, relative
imports and `importlib.import_module("dsdeploy...")` with a literal (or f-string prefix) name.

    base (errors, the package root) → catalog → specs → estimators → planner → edges

- A module may import its own layer and the layers before it, never a later one.
- `base` modules import nothing of dsdeploy but base; every layer may import them.
- Edges (cli, reports, engines, serve, bench, validate, doctor, tinymodel) are siblings: an edge
  imports another edge only where EDGE_IMPORTS allows it (cli composes all of them; serve launches
  engines through the engine adapters; reports show the adapters' launch command; doctor reports
  serve's loading path). Nothing imports cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "dsdeploy"

LAYERS = ["base", "catalog", "specs", "estimators", "planner", "edge"]
# first component under dsdeploy → layer
LAYER_OF = {
    "": "base",  # dsdeploy/__init__.py: the version only
    "errors": "base",  # UserError: what every layer raises on bad input
    "catalog": "catalog",
    "specs": "specs",
    "estimators": "estimators",
    "planner": "planner",
    "cli": "edge",
    "reports": "edge",
    "engines": "edge",
    "serve": "edge",
    "bench": "edge",
    "validate": "edge",
    "doctor": "edge",
    "tinymodel": "edge",  # the project's own tiny model (files + GGUF writer); used by `dsdeploy serve`
}
EDGES = {k for k, v in LAYER_OF.items() if v == "edge"}
# edge → the other edges it may import
EDGE_IMPORTS: dict[str, set[str]] = {
    "cli": EDGES - {"cli"},
    "serve": {"engines"},  # `serve --engine vllm|sglang` runs engines.<engine>.local_launch
    "reports": {"engines"},  # the report shows the launch command the adapters write
    "doctor": {"serve"},  # doctor reports which llama.cpp loading path `serve` takes (serve.loading)
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(source: str, module: str, package: bool = False) -> set[str]:
    """Every dsdeploy module name that `source` (the text of `module`) imports, at any depth."""
    out: set[str] = set()
    pkg = module if package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = pkg.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            # `from dsdeploy.x import y` may name a submodule y: count it (to_layer ignores what is not one)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name not in ("import_module", "__import__"):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                out.add(str(arg.values[0].value).rstrip("."))  # f"dsdeploy.engines.{engine}" → dsdeploy.engines
    return {m for m in out if m == "dsdeploy" or m.startswith("dsdeploy.")}


def existing(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PKG / rel).with_suffix(".py").is_file() or (PKG / rel / "__init__.py").is_file()


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def modules() -> dict[str, set[str]]:
    """module → the existing dsdeploy modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        mod = module_name(path)
        graph[mod] = {m for m in imports_of(path.read_text(), mod, is_package(path)) if existing(m)}
    return graph


def violation(src: str, dst: str) -> str | None:
    """Why `src` may not import `dst`, or None when it may."""
    a, b = top(src), top(dst)
    la, lb = LAYERS.index(LAYER_OF[a]), LAYERS.index(LAYER_OF[b])
    if la < lb:
        return f"{LAYER_OF[a]} imports the later layer {LAYER_OF[b]}"
    if LAYER_OF[a] == LAYER_OF[b] == "edge" and a != b and b not in EDGE_IMPORTS.get(a, set()):
        return f"edge {a} imports edge {b} (allowed edge imports: EDGE_IMPORTS)"
    return None


def breaks() -> dict[tuple[str, str], str]:
    graph = modules()
    return {(s, d): why for s, deps in graph.items() for d in deps if (why := violation(s, d))}


def test_every_module_has_a_layer() -> None:
    unmapped = sorted({m for m in modules() if top(m) not in LAYER_OF})
    assert not unmapped, f"add these packages to LAYER_OF (and docs/architecture.md): {unmapped}"


def test_no_import_breaks_the_layers() -> None:
    new = breaks()
    assert not new, "imports that break docs/architecture.md's layer rules:\n" + "\n".join(
        f"  {s} -> {d}: {why}" for (s, d), why in sorted(new.items())
    )


def test_the_checker_sees_every_kind_of_import() -> None:
    src = (
        "import dsdeploy.errors\n"
        "from dsdeploy.specs import deployment\n"
        "from ..planner.plan import evaluate\n"
        "from . import schema\n"
        "def f(engine):\n"
        "    from dsdeploy.cli.cmd_cost import build_cost\n"
        "    importlib.import_module('dsdeploy.reports.text')\n"
        "    return importlib.import_module(f'dsdeploy.engines.{engine}')\n"
    )
    found = {m for m in imports_of(src, "dsdeploy.catalog.prices") if existing(m)}
    assert found == {
        "dsdeploy.errors",
        "dsdeploy.specs",
        "dsdeploy.specs.deployment",
        "dsdeploy.planner.plan",
        "dsdeploy.catalog",
        "dsdeploy.catalog.schema",
        "dsdeploy.cli.cmd_cost",
        "dsdeploy.reports.text",
        "dsdeploy.engines",
    }
    assert violation("dsdeploy.catalog.prices", "dsdeploy.planner.plan")
    assert violation("dsdeploy.catalog.prices", "dsdeploy.errors") is None
    assert violation("dsdeploy.bench.record", "dsdeploy.engines.options")
    assert violation("dsdeploy.serve.external", "dsdeploy.engines") is None
    assert violation("dsdeploy.cli.cmd_plan", "dsdeploy.reports.text") is None
    assert violation("dsdeploy.errors", "dsdeploy.catalog")
