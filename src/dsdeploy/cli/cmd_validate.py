"""`dsdeploy validate FILE.csv` and `dsdeploy calibrate FILE.csv -o calibration.toml` (edges)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dsdeploy.catalog import load_catalog
from dsdeploy.catalog.calibration import calibration_to_toml, load_calibration
from dsdeploy.cli.files import write_text
from dsdeploy.validate.scenarios import evaluate_rows, filter_rows, read_scenarios, summarize


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "—" if x is None else f"{x:,.4g}"


def _summary_table(title: str, summ: dict) -> Table:
    t = Table(title=title)
    for c in ("slice", "rows", "coverage", "median APE", "p90 APE", "within ±30%"):
        t.add_column(c, justify="right" if c != "slice" else "left")
    t.add_row(
        "all",
        str(summ["rows"]),
        _pct(summ["coverage"]),
        _pct(summ["median_ape"]),
        _pct(summ["p90_ape"]),
        _pct(summ["within_30pct"]),
    )
    for key in ("by_metric", "by_placement"):
        for name, s in summ[key].items():
            t.add_row(
                f"{key[3:]}: {name}",
                str(s["rows"]),
                _pct(s["coverage"]),
                _pct(s["median_ape"]),
                _pct(s["p90_ape"]),
                _pct(s["within_30pct"]),
            )
    return t


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        file: Path = typer.Argument(..., help="CSV in the scenario schema (data/reference/measurements/SCHEMA.md)"),
        json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
        scope: str | None = typer.Option(None, "--scope", help="keep rows of this scope (core, large)"),
        max_ambiguity: str | None = typer.Option(None, "--max-ambiguity", help="none, minor or major"),
        calibration: Path | None = typer.Option(None, "--calibration", help="calibration TOML (default: shipped)"),
        roofline: bool = typer.Option(False, "--roofline", help="ignore calibration: pure roofline"),
    ) -> None:
        """Predict every row of a measurement file and report the errors."""
        from dsdeploy.estimators.calibration import Calibration

        cat = load_catalog()
        rows = filter_rows(read_scenarios(file), scope, max_ambiguity)
        cal = Calibration() if roofline else load_calibration(calibration)
        results = evaluate_rows(cat, rows, cal)
        summ = summarize(results)
        if json_out:
            print(json.dumps({"rows": [r.to_dict() for r in results], "summary": summ}, indent=2, default=float))
            return
        con = Console()
        t = Table(title=f"{file.name}: {len(rows)} rows")
        for c in ("id", "metric", "group", "measured", "predicted", "APE", "band (p80)", "note"):
            t.add_column(c)
        for r in results:
            note = r.reason or (("defaults: " + ", ".join(r.defaults)) if r.defaults else "")
            band = f"±{100 * r.band:.0f}%" if r.band is not None else "—"
            t.add_row(r.id, r.metric, r.group, _num(r.measured), _num(r.predicted), _pct(r.ape), band, note)
        con.print(t)
        con.print(_summary_table("summary", summ))

    @app.command("calibrate")
    def calibrate_cmd(
        file: Path = typer.Argument(
            ..., help="CSV in the scenario schema, e.g. rows recorded by `dsdeploy bench --record`"
        ),
        output: Path = typer.Option(..., "-o", "--output", help="where to write calibration.toml"),
        scope: str | None = typer.Option(None, "--scope"),
        max_ambiguity: str | None = typer.Option(None, "--max-ambiguity"),
        merge: bool = typer.Option(True, "--merge/--no-merge", help="keep shipped groups that FILE does not refit"),
        fill_major: bool = typer.Option(
            False,
            "--fill-from-major",
            help="fit groups the kept rows miss from the file's other rows of the same scope",
        ),
    ) -> None:
        """Fit the efficiency factors per engine × hardware class and report error before and after."""
        from dsdeploy.estimators.calibration import Calibration
        from dsdeploy.validate.fit import calibrate

        cat = load_catalog()
        all_rows = read_scenarios(file)
        rows = filter_rows(all_rows, scope, max_ambiguity)
        fill = [r for r in filter_rows(all_rows, scope, None) if r not in rows] if fill_major else None
        new = calibrate(cat, rows, fitted_on=file.name if file.is_absolute() else file.as_posix(), fill_rows=fill)
        if merge:
            shipped = load_calibration(None)
            keys = {(g.engine, g.hw_class, g.epoch) for g in new.groups}
            new = Calibration(
                groups=new.groups + tuple(g for g in shipped.groups if (g.engine, g.hw_class, g.epoch) not in keys),
                fitted_on=new.fitted_on,
                default_band=new.default_band,
                meta=new.meta,
            )
        before = summarize(evaluate_rows(cat, rows, load_calibration(None) if merge else Calibration()))
        after = summarize(evaluate_rows(cat, rows, new))
        write_text(output, calibration_to_toml(new))
        con = Console()
        t = Table(title=f"fitted groups → {output}")
        for c in ("engine", "hw class", "epoch", "rows", "bw eff", "compute eff", "m½", "overhead µs/step", "band"):
            t.add_column(c)
        for g in new.groups:
            t.add_row(
                g.engine,
                g.hw_class,
                g.epoch or "—",
                str(g.rows),
                f"{g.bw_eff:.3f}",
                f"{g.compute_eff:.4f}",
                f"{g.m_half:.0f}",
                f"{g.step_overhead_us:.1f}",
                f"±{100 * g.band:.0f}%",
            )
        con.print(t)
        con.print(_summary_table("before", before))
        con.print(_summary_table("after", after))
