"""`dsdeploy seed-check`: the seed article's quantitative claims against our numbers.

Computes (dsdeploy.planner.seedcheck), prints a table, and with `--write FILE` writes the
Markdown report (the committed one is docs/seed-article-check.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dsdeploy.cli.files import write_text

ARTICLE = "shared/seed/deepseek-local-deployment-article.zh.txt"


def register(app: typer.Typer) -> None:
    @app.command("seed-check")
    def seed_check(
        write: Path | None = typer.Option(
            None, "--write", help="Write the Markdown report here (e.g. docs/seed-article-check.md)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the claims as JSON."),
    ) -> None:
        """Check the seed article's numbers (R1 on 8× H100, 4-bit on one A100, NVLink, InfiniBand, storage, power)."""
        from dsdeploy.catalog import load_catalog
        from dsdeploy.planner.seedcheck import claims_as_dicts

        claims = claims_as_dicts(load_catalog())
        if write is not None:
            from dsdeploy.reports.markdown import seedcheck_markdown

            write_text(write, seedcheck_markdown(claims, ARTICLE))
        if as_json:
            typer.echo(json.dumps(claims, indent=2, ensure_ascii=False))
        else:
            from dsdeploy.reports.text import render_seedcheck

            render_seedcheck(claims)
        if write is not None and not as_json:
            typer.echo(f"wrote {write}")
