"""Rendering of planner results: Rich tables for the terminal (`text`) and Markdown (`markdown`).

Renderers take the plain dicts built by `dsdeploy.planner.result` (the same data `--json` prints)
and only format them: unit conversion for display (bytes → GB) is the only arithmetic here.
"""

GB = 1e9


def gb(n: float | int | None, digits: int = 1) -> str:
    """Bytes as decimal GB for display."""
    if n is None:
        return "—"
    if 0 < abs(n) < 0.01 * GB and digits < 3:
        digits = 4  # small models: keep the figure visible instead of 0.0
    return f"{n / GB:,.{digits}f}"


def fmt_num(x, digits: int = 1) -> str:
    if x is None:
        return "—"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def perf_cell(v) -> str:
    """A performance figure, or a (low, high) band, for a table cell."""
    if isinstance(v, (list, tuple)):
        return "–".join(perf_cell(x) for x in v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "—" if v is None else str(v)
    return fmt_num(v)


def verdict_of(res: dict) -> str:
    """The plan's verdict ('fits', 'queues', 'does not fit'); plan dicts saved before the `verdict` key
    say only `fits`."""
    return res.get("verdict") or ("fits" if res["fits"] else "does not fit")
