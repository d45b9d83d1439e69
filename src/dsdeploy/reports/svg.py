"""Small hand-written SVG charts (no JavaScript, no vendored library): a stacked horizontal bar chart
and an x–y chart with linear or log axes. Callers pass the numbers; this module only maps them to
pixels. Every mark carries `data-*` attributes with its raw value and a `<title>` (hover text and
screen readers), so tests read the numbers straight from the DOM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

PALETTE = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"]
FONT = 'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"'


def _a(v: Any) -> str:
    return escape(str(v), quote=True)


def _n(x: float) -> str:
    return f"{x:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi] (1, 2, 5 × 10^k steps)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, v = [start], start
    while v < hi - step * 1e-9:
        v += step
        out.append(v)
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 × 10^k values in [lo, hi] (only powers of ten when the range spans > 3 decades)."""
    lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1,) if hi_e - lo_e > 3 else (1, 2, 5)
    return [m * 10.0**e for e in range(lo_e, hi_e + 1) for m in mults if lo <= m * 10.0**e <= hi]


def short(v: float) -> str:
    """Tick label: 1.5k, 20M, 0.5."""
    a = abs(v)
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:g}{suf}"
    return f"{v:g}"


def _round125(v: float, down: bool) -> float:
    """The nearest 1, 2 or 5 × 10^k below (down) or above v."""
    e = math.floor(math.log10(v))
    cands = [m * 10.0**k for k in (e - 1, e, e + 1) for m in (1, 2, 5)]
    return max(c for c in cands if c <= v) if down else min(c for c in cands if c >= v)


@dataclass
class Axis:
    lo: float
    hi: float
    log: bool = False
    label: str = ""

    @classmethod
    def fit(cls, values: Sequence[float], log: bool = False, label: str = "", zero: bool = True) -> Axis:
        vals = [v for v in values if v is not None and (v > 0 or not log)]
        if not vals:
            return cls(1.0, 10.0, log, label) if log else cls(0.0, 1.0, log, label)
        lo, hi = min(vals), max(vals)
        if log:
            return cls(_round125(lo, down=True), _round125(hi * 1.0001, down=False), True, label)
        lo = 0.0 if zero else lo
        ticks = nice_ticks(lo, hi * 1.05 if hi > 0 else 1.0)
        return cls(ticks[0], ticks[-1], False, label)

    def ticks(self) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else nice_ticks(self.lo, self.hi)

    def frac(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo * 1e-3)
            return (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / (self.hi - self.lo)


@dataclass
class Segment:
    key: str
    label: str
    value: float
    color: str
    text: str  # formatted value for the tooltip


@dataclass
class Bar:
    label: str
    segments: list[Segment]
    markers: list[tuple[str, float, str]] = field(default_factory=list)  # (name, value, text)
    note: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


def _legend_row_layout(segs: list[Segment], left: int, right_edge: int) -> list[tuple[Segment, int, int]]:
    """(segment, x, row) for each legend entry: left to right from `left`, a new row when one would
    pass `right_edge` (a one-row legend is laid out as before)."""
    out, lx, row = [], left, 0
    for s in segs:
        width = 24 + 7 * len(s.label)
        if lx > left and lx + width - 8 > right_edge:
            lx, row = left, row + 1
        out.append((s, lx, row))
        lx += width
    return out


def stacked_bars(chart_id: str, title: str, bars: Sequence[Bar], unit_fmt: Callable[[float], str]) -> str:
    """Horizontal stacked bars, one per row; markers are vertical ticks (e.g. usable, capacity)."""
    w, left, right, row_h, top = 760, 190, 40, 42, 46
    seen: dict[str, Segment] = {}
    for b in bars:
        for s in b.segments:
            seen.setdefault(s.key, s)
    legend = _legend_row_layout(list(seen.values()), left, w)
    top += 18 * legend[-1][2] if legend else 0  # one more legend row, 18 px lower
    h = top + row_h * len(bars) + 34
    scale_max = max([sum(s.value for s in b.segments) for b in bars] + [m[1] for b in bars for m in b.markers] + [1])
    ax = Axis(0.0, nice_ticks(0, scale_max * 1.02)[-1])
    span = w - left - right

    def x(v: float) -> float:
        return left + span * ax.frac(v)

    out = [
        f'<svg id="{_a(chart_id)}" class="chart" viewBox="0 0 {w} {h}" role="img" '
        f'aria-labelledby="{_a(chart_id)}-title" xmlns="http://www.w3.org/2000/svg" {FONT} font-size="12">',
        f'<title id="{_a(chart_id)}-title">{escape(title)}</title>',
    ]
    for s, lx, row in legend:
        out.append(f'<rect x="{lx}" y="{12 + 18 * row}" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 16}" y="{22 + 18 * row}">{escape(s.label)}</text>')
    for t in ax.ticks():
        out.append(f'<line x1="{_n(x(t))}" x2="{_n(x(t))}" y1="{top - 4}" y2="{h - 30}" stroke="#ddd"/>')
        out.append(f'<text x="{_n(x(t))}" y="{h - 16}" text-anchor="middle">{unit_fmt(t)}</text>')
    for i, b in enumerate(bars):
        y = top + i * row_h
        extra = "".join(f' data-{_a(k)}="{_a(v)}"' for k, v in b.attrs.items())
        out.append(f'<g class="bar" data-label="{_a(b.label)}"{extra}>')
        out.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(b.label)}</text>')
        cur = 0.0
        for s in b.segments:
            if s.value <= 0:
                continue
            out.append(
                f'<rect class="seg" data-part="{_a(s.key)}" data-value="{_a(s.value)}" x="{_n(x(cur))}" y="{y + 4}" '
                f'width="{_n(max(x(cur + s.value) - x(cur), 0.5))}" height="{row_h - 16}" fill="{s.color}">'
                f"<title>{escape(b.label)}: {escape(s.label)} {escape(s.text)}</title></rect>"
            )
            cur += s.value
        for name, v, text in b.markers:
            out.append(
                f'<line class="marker" data-marker="{_a(name)}" data-value="{_a(v)}" x1="{_n(x(v))}" x2="{_n(x(v))}" '
                f'y1="{y}" y2="{y + row_h - 8}" stroke="#222" stroke-width="2" '
                f'stroke-dasharray="{"4 3" if name != "capacity" else "none"}"><title>{escape(text)}</title></line>'
            )
        if b.note:
            out.append(f'<text x="{left}" y="{y + row_h + 2}" fill="#b00020" font-size="11">{escape(b.note)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


@dataclass
class Series:
    key: str
    label: str
    points: list[dict[str, Any]]  # each has the x and y keys plus anything to put in data-*
    color: str
    line: bool = True
    dashed: bool = False
    marker: str = "circle"  # circle | square | none
    band: list[tuple[float, float, float]] | None = None  # (x_lo, x_hi, y) polygon along the curve


@dataclass
class VLine:
    key: str
    x: float
    text: str
    color: str = "#b00020"


@dataclass
class _Plot:
    """The plotting area of an x–y chart: pixel geometry and the two axes."""

    chart_id: str
    left: float
    top: float
    pw: float  # plot width, pixels
    ph: float  # plot height, pixels
    x_axis: Axis
    y_axis: Axis

    def px(self, v: float) -> float:
        return self.left + self.pw * min(max(self.x_axis.frac(v), -0.02), 1.02)

    def py(self, v: float) -> float:
        return self.top + self.ph * (1 - min(max(self.y_axis.frac(v), -0.02), 1.02))

    @property
    def clip(self) -> str:
        return f'clip-path="url(#{_a(self.chart_id)}-clip)"'


def _legend_layout(
    series: Sequence[Series], w: int, left: int, right: int
) -> tuple[list[tuple[float, int, Series]], int]:
    """Legend entry positions, wrapping onto more rows when the labels are long; and the last row's y."""
    legend: list[tuple[float, int, Series]] = []
    lx, ly = float(left + 8), 12
    for s in series:
        width = 30 + 6.5 * len(s.label)
        if lx + width > w - right and lx > left + 8:
            lx, ly = float(left + 8), ly + 17
        legend.append((lx, ly, s))
        lx += width
    return legend, ly


def _grid_and_axes(pl: _Plot, h: int) -> list[str]:
    """Tick grid lines and labels, the frame, and both axis titles."""
    left, top, pw, ph = pl.left, pl.top, pl.pw, pl.ph
    out = []
    for t in pl.x_axis.ticks():
        out.append(f'<line x1="{_n(pl.px(t))}" x2="{_n(pl.px(t))}" y1="{top}" y2="{top + ph}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{_n(pl.px(t))}" y="{top + ph + 16}" text-anchor="middle">{short(t)}</text>')
    for t in pl.y_axis.ticks():
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{_n(pl.py(t))}" y2="{_n(pl.py(t))}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 6}" y="{_n(pl.py(t) + 4)}" text-anchor="end">{short(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">{escape(pl.x_axis.label)}</text>')
    out.append(
        f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">{escape(pl.y_axis.label)}</text>'
    )
    return out


def _band(pl: _Plot, s: Series, band: list[tuple[float, float, float]]) -> str:
    """A series' shaded error band: along x_lo one way, back along x_hi."""
    corners = [(pl.px(a), pl.py(y)) for a, _, y in band] + [(pl.px(b), pl.py(y)) for _, b, y in reversed(band)]
    poly = " ".join(f"{_n(a)},{_n(b)}" for a, b in corners)
    return (
        f'<polygon class="band" data-series="{_a(s.key)}" points="{poly}" fill="{s.color}" '
        f'fill-opacity="0.15" stroke="none" {pl.clip}><title>{escape(s.label)}: error band</title></polygon>'
    )


def _vline(pl: _Plot, v: VLine) -> list[str]:
    """A dashed vertical reference line (an SLO, a break-even) and its label."""
    top, ph = pl.top, pl.ph
    return [
        f'<line class="vline" data-line="{_a(v.key)}" data-value="{_a(v.x)}" x1="{_n(pl.px(v.x))}" '
        f'x2="{_n(pl.px(v.x))}" y1="{top}" y2="{top + ph}" stroke="{v.color}" stroke-dasharray="6 4" '
        f'stroke-width="1.5"><title>{escape(v.text)}</title></line>',
        f'<text x="{_n(pl.px(v.x) + 4)}" y="{top + 12}" fill="{v.color}" font-size="11">{escape(v.text)}</text>',
    ]


def _point(pl: _Plot, s: Series, p: dict[str, Any], x_key: str, y_key: str) -> str:
    """One marker (square, else circle) with the point's fields as data-* attributes and hover text."""
    attrs = "".join(f' data-{_a(k.replace("_", "-"))}="{_a(v)}"' for k, v in p.items() if v is not None)
    tip = ", ".join(f"{k} {v}" for k, v in p.items() if v is not None and k != "label")
    cx, cy = pl.px(p[x_key]), pl.py(p[y_key])
    square = s.marker == "square"
    tag = (
        f'<rect x="{_n(cx - 4)}" y="{_n(cy - 4)}" width="8" height="8"'
        if square
        else f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="4"'
    )
    return (
        f'{tag} class="pt" data-series="{_a(s.key)}"{attrs} fill="{s.color}" stroke="#fff">'
        f"<title>{escape(s.label)}: {escape(tip)}</title>{'</rect>' if square else '</circle>'}"
    )


def _series(pl: _Plot, s: Series, x_key: str, y_key: str) -> list[str]:
    """A series' line (when it has one and two or more points) and its markers; points missing x or y are skipped."""
    pts = [p for p in s.points if p.get(x_key) is not None and p.get(y_key) is not None]
    out = []
    if s.line and len(pts) > 1:
        d = " ".join(f"{_n(pl.px(p[x_key]))},{_n(pl.py(p[y_key]))}" for p in pts)
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        out.append(f'<polyline points="{d}" fill="none" stroke="{s.color}" stroke-width="2"{dash} {pl.clip}/>')
    out += [_point(pl, s, p, x_key, y_key) for p in pts]
    return out


def _highlight(pl: _Plot, p: dict[str, Any], text: str, x_key: str, y_key: str) -> list[str]:
    """A ring round one point (the knee) and its bold label."""
    cx, cy = pl.px(p[x_key]), pl.py(p[y_key])
    return [
        f'<circle class="knee" data-concurrency="{_a(p.get("concurrency"))}" cx="{_n(cx)}" cy="{_n(cy)}" r="10" '
        f'fill="none" stroke="#222" stroke-width="2"><title>{escape(text)}</title></circle>',
        f'<text x="{_n(cx + 12)}" y="{_n(cy + 18)}" font-weight="bold">{escape(text)}</text>',
    ]


def xy_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    x_key: str,
    y_key: str,
    x_axis: Axis,
    y_axis: Axis,
    vlines: Sequence[VLine] = (),
    highlight: tuple[dict[str, Any], str] | None = None,
) -> str:
    """Points and lines of several series; optional shaded band per series, vertical reference lines
    (SLOs, break-even) and one highlighted point (the knee)."""
    w, left, right, bottom = 600, 64, 16, 50
    legend, ly = _legend_layout(series, w, left, right)
    top = ly + 28
    h = top + 300 + bottom
    pl = _Plot(chart_id, left, top, w - left - right, h - top - bottom, x_axis, y_axis)
    out = [
        f'<svg id="{_a(chart_id)}" class="chart" viewBox="0 0 {w} {h}" role="img" '
        f'aria-labelledby="{_a(chart_id)}-title" xmlns="http://www.w3.org/2000/svg" {FONT} font-size="12">',
        f'<title id="{_a(chart_id)}-title">{escape(title)}</title>',
        f'<clipPath id="{_a(chart_id)}-clip"><rect x="{left}" y="{top}" width="{pl.pw}" height="{pl.ph}"/></clipPath>',
    ]
    out += _grid_and_axes(pl, h)
    out += [_band(pl, s, s.band) for s in series if s.band]
    for v in vlines:
        out += _vline(pl, v)
    for s in series:
        out += _series(pl, s, x_key, y_key)
    if highlight is not None:
        out += _highlight(pl, *highlight, x_key, y_key)
    for lx, ly, s in legend:
        out.append(f'<rect x="{_n(lx)}" y="{ly}" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{_n(lx + 16)}" y="{ly + 10}">{escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)
