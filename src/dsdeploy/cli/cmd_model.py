"""`dsdeploy model ID_OR_PATH`: parameter counts, KV-cache bytes per token and FLOPs of a model,
read from the catalog's config.json, a config.json path, or a GGUF header. An edge: the numbers
come from `ModelSpec` (via `dsdeploy.planner.result.model_summary`)."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("model")
    def model(
        id_or_path: str = typer.Argument(
            ..., metavar="ID_OR_PATH", help="Catalog id or alias, a config.json path, or a .gguf path."
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print JSON (params_total, params_active, kv_bytes_per_token, …)."
        ),
    ) -> None:
        """Show a model's parameters (total, active, by component), KV bytes per token and FLOPs per token."""
        from dsdeploy.catalog import load_catalog
        from dsdeploy.planner.result import model_summary
        from dsdeploy.specs.model import load_model_spec

        cat = load_catalog()
        spec = load_model_spec(id_or_path)
        summary = model_summary(spec, cat, spec.name)
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        from dsdeploy.reports.text import render_model

        render_model(summary)
