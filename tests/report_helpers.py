"""Helpers shared by the report tests: run the CLI in-process and read the numbers out of a page."""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
BENCH_FILES = [FIXTURES / "bench_tiny_c124.json", FIXTURES / "bench_tiny_c1248.json"]


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`dsdeploy ARGS` in-process through the console-script entry point."""
    from dsdeploy.cli.main import main

    monkeypatch.setattr(sys, "argv", ["dsdeploy", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.items: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.items.append((tag, {k: (v or "") for k, v in attrs}))

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [a for t, a in self.items if (tag is None or t == tag) and all(a.get(k) == v for k, v in want.items())]
