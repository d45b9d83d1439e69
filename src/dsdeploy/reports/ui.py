"""`dsdeploy ui`'s web app (FastAPI, on loopback): a form of plan options and the report's sections,
redrawn as the options change.

    GET /           the page (options from the query string, e.g. /?accelerator=h200-sxm&count=4)
    GET /api/plan   the plan dict, exactly `dsdeploy plan --json`'s for the same options
    GET /api/view   {"plan": the plan dict, "html": the report's sections drawn for it}

Bad options answer 400 with {"error": the same one-line message the CLI prints}. The page loads
nothing from outside: CSS and its one script are inline, the charts are inline SVG.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from dsdeploy.errors import UserError
from dsdeploy.reports.data import PlanInputs, gather

# Query parameters the UI takes: PlanInputs' fields except the two that name files on the server.
_INT = {"count", "nodes", "tp", "pp", "ep", "dp_attention", "cpu_sockets", "input_len", "output_len", "concurrency"}
_FLOAT = {"dram_gb"}
_BOOL = {"mtp"}
_SKIP = {"config", "calibration"}
SLO_KEYS = ("ttft_ms", "tpot_ms")


def inputs_from_query(q: dict[str, str]) -> tuple[PlanInputs, dict[str, float | None]]:
    """PlanInputs and SLOs from query parameters; an empty value means the default."""
    known = {f.name for f in fields(PlanInputs)} - _SKIP
    unknown = set(q) - known - set(SLO_KEYS) - {"cost", "currency", "requests_per_day"}
    if unknown:
        raise UserError(f"unknown option(s): {', '.join(sorted(unknown))}")
    kw: dict[str, Any] = {}
    for k, v in q.items():
        if k not in known or v == "":
            continue
        try:
            if k in _INT:
                kw[k] = int(v)
            elif k in _FLOAT:
                kw[k] = float(v)
            elif k in _BOOL:
                kw[k] = v.lower() in ("1", "true", "on", "yes")
            else:
                kw[k] = v
        except ValueError:
            raise UserError(f"{k} must be a number, got {v!r}") from None
    if kw.get("model"):  # catalog ids only: the UI does not read files on the server
        from dsdeploy.catalog import load_catalog

        kw["model"] = load_catalog().model(kw["model"]).id
    slo: dict[str, float | None] = {}
    for k in SLO_KEYS:
        v = q.get(k, "")
        try:
            slo[k] = float(v) if v else None
        except ValueError:
            raise UserError(f"{k} must be a number, got {v!r}") from None
    return PlanInputs(**kw), slo


def choices() -> dict[str, list[str]]:
    """The catalog ids the form offers."""
    from dsdeploy.catalog import load_catalog

    cat = load_catalog()
    return {
        "model": sorted(cat.models),
        "weights": sorted(cat.formats),
        "kv_dtype": sorted(cat.kv_dtypes),
        "accelerator": sorted(cat.accelerators) + ["none"],
        "engine": sorted(cat.engines),
    }


def demand_from_query(v: str) -> float | None:
    """The cost's demand, requests per day (`cost --requests-per-day`); empty = not given, which the
    cost refuses with `cost`'s own message."""
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        raise UserError(f"requests per day must be a number; got '{v}'") from None


def form_values(
    inp: PlanInputs,
    plan: dict[str, Any],
    slo: dict[str, float | None],
    cost: bool = False,
    requests_per_day: float | None = None,
) -> dict[str, Any]:
    """What the form shows: the options as given, the defaults filled in from the plan."""
    hw = plan["hardware"]
    return {
        **inp.to_dict(),
        "model": plan["model"],
        "weights": plan["weights"],
        "accelerator": hw["accelerator"] or "none",
        "count": inp.count if inp.count is not None else hw["accelerators_per_node"],
        **slo,
        "cost": cost,
        "requests_per_day": requests_per_day,
    }


def create_app() -> FastAPI:
    from dsdeploy.reports.html import render_sections, render_ui_page

    app = FastAPI(title="dsdeploy ui", docs_url=None, redoc_url=None, openapi_url=None)

    def _view(request: Request):
        inp, slo = inputs_from_query(dict(request.query_params))
        cost = request.query_params.get("cost", "") in ("1", "true", "on")
        demand = (demand_from_query(request.query_params.get("requests_per_day", "")), None) if cost else None
        built, ctx = gather(inp, slo=slo, cost=demand, currency=request.query_params.get("currency") or "USD")
        return inp, slo, built, ctx

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/api/plan")
    def api_plan(request: Request):
        return JSONResponse(_view(request)[2].plan)

    @app.get("/api/view")
    def api_view(request: Request):
        _, _, built, ctx = _view(request)
        return JSONResponse({"plan": built.plan, "html": render_sections(ctx)})

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        try:
            inp, slo, built, ctx = _view(request)
        except UserError as exc:
            inp, slo, built, ctx = _view_default()
            ctx["error"] = str(exc)
        ctx["form"] = form_values(
            inp,
            built.plan,
            slo,
            cost=ctx.get("cost") is not None,
            requests_per_day=demand_from_query(request.query_params.get("requests_per_day", "")),
        )
        return HTMLResponse(render_ui_page(ctx, choices()))

    return app


def _view_default():
    inp = PlanInputs()
    built, ctx = gather(inp)
    return inp, {}, built, ctx
