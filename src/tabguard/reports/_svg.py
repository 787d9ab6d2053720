"""Inline SVG drawings of the built-in plot kinds (``hist``, ``bar``, ``barh``, ``rate``,
``line``, ``scatter``, ``heatmap``).

A data audit draws two figures per feature; with matplotlib each costs about a fifth of a
CPU-second (text layout of every tick label, twice with a tight layout), as much in total as
fitting a model on a million rows, and importing matplotlib costs about a second more. These
kinds are rectangles, lines, dots and labels on one or two axes, so they are written here
directly as SVG elements: a few milliseconds each, sharp at any zoom, no script, and no
matplotlib in the process. Tick positions are matplotlib's ``MaxNLocator``'s and heatmap colours
its ``RdBu_r`` colour map, computed by :mod:`tabguard.reports._scales` (the same numbers,
without the import), so axes and colours read as they did. Registered kinds (the model audit's
beeswarm) and options drawn nowhere here (a logarithmic histogram, a colour map other than
``RdBu``, colours given per dot) stay PNG images drawn by :mod:`tabguard.reports._plots`.

Every text from the data (titles, labels, series names) is XML-escaped here; the result is
inserted into the report as markup.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import numpy as np

from tabguard.reports._model import PlotSpec
from tabguard.reports._scales import diverging_color, max_n_ticks

_COLORS = ["#1f4e79", "#c0504d", "#4f9d69", "#e8a33d", "#7f5fa8", "#5a5a5a"]
_W, _H = 640.0, 300.0  # plot frame; the bottom margin grows with the x labels
_FONT = 11.0
_CHAR = 0.6 * _FONT  # average width of a character of the sans-serif font, for layout
_MAX_LABEL = 28

# characters XML 1.0 does not allow (control characters, lone surrogates)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

SvgRenderer = Callable[["_Canvas", dict[str, Any]], None]
_SVG: dict[str, SvgRenderer] = {}


def _register(kind: str) -> Callable[[SvgRenderer], SvgRenderer]:
    def deco(fn: SvgRenderer) -> SvgRenderer:
        _SVG[kind] = fn
        return fn

    return deco


def render_svg(spec: PlotSpec) -> str | None:
    """The figure as an inline ``<svg>`` element, or None when its kind is drawn as PNG.

    Raises
    ------
    ValueError, KeyError, TypeError
        Plot data of the wrong shape (the report then leaves the figure out, as for PNG).
    """
    fn = _SVG.get(spec.kind)
    if fn is None or not _supported(spec):
        return None
    canvas = _Canvas(spec.title)
    fn(canvas, spec.data)
    return canvas.svg()


def _supported(spec: PlotSpec) -> bool:
    d = spec.data
    if spec.kind == "heatmap":
        return d.get("cmap", "RdBu_r") in ("RdBu_r", "RdBu")
    if spec.kind == "scatter":
        return isinstance(d.get("color", _COLORS[0]), str)  # one colour, not one per dot
    return d.get("xscale") in (None, "linear", "symlog")


def _xml(text: str) -> str:
    """Text escaped for XML, without the characters XML cannot hold."""
    return escape(_NOT_XML.sub("\ufffd", text))


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def tick_text(v: float) -> str:
    """Tick label: ``0.25``, ``1,500``, ``250k``, ``1.2M``, ``1e-05``.

    Examples
    --------
    >>> [tick_text(v) for v in (0.25, 1500.0, 250000.0, 1.2e6, 1e-5, -3.0)]
    ['0.25', '1,500', '250k', '1.2M', '1e-05', '-3']
    """
    a = abs(v)
    if a >= 1e4:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= scale:
                return f"{v / scale:.3g}{suffix}"
    if a >= 1000 and float(v).is_integer():
        return f"{int(v):,}"
    if a != 0 and a < 1e-3:
        return f"{v:.2g}"
    return f"{v:.4g}"


def _short(label: str) -> str:
    return label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1] + "…"


class _Axis:
    """A linear, logarithmic or symmetric-log map from data values to pixels, with its ticks."""

    def __init__(
        self,
        lo: float,
        hi: float,
        a: float,
        b: float,
        *,
        symlog: float | None = None,
        log: bool = False,
    ) -> None:
        self.symlog = symlog
        self.log = log
        self.lo, self.hi = self._t(lo), self._t(hi)
        if not self.hi > self.lo:
            self.lo, self.hi = self.lo - 0.5, self.hi + 0.5
        self.a, self.b = a, b

    def _t(self, v: float) -> float:
        if self.log:
            return math.log10(v)
        t = self.symlog
        if t is None:
            return v
        # matplotlib's symlog (base 10, linscale 1): linear inside [-t, t], log outside
        lin = 1.0 / (1.0 - 0.1)
        a = abs(v)
        return math.copysign(a / t * lin if a <= t else lin + math.log10(a / t), v)

    def __call__(self, v: float) -> float:
        return self.a + (self._t(v) - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, n: int = 6) -> list[float]:
        """Tick values inside the axis range."""
        if self.log:
            vals = self._log_ticks()
        elif self.symlog is None:
            vals = max_n_ticks(self.lo, self.hi, nbins=n, steps=[1, 2, 2.5, 5, 10])
        else:
            top = self._inverse(self.hi)
            vals = [0.0] + [10.0**k for k in range(math.floor(math.log10(self.symlog)), 20)]
            vals = [v for v in vals if v <= top * 1.0001]
        eps = 1e-9 * (self.hi - self.lo)
        return [float(v) for v in vals if self.lo - eps <= self._t(v) <= self.hi + eps]

    def _log_ticks(self) -> list[float]:
        """Powers of ten inside the range; with fewer than two, also their 2 and 5 multiples."""
        k0, k1 = math.floor(self.lo), math.ceil(self.hi)
        decades = [10.0**k for k in range(k0, k1 + 1)]
        inside = [v for v in decades if self.lo <= math.log10(v) <= self.hi]
        if len(inside) >= 2:
            return inside
        return [m * v for v in decades for m in (1.0, 2.0, 5.0)]

    def _inverse(self, u: float) -> float:
        t = self.symlog or 1.0
        lin = 1.0 / (1.0 - 0.1)
        return u * t / lin if abs(u) <= lin else math.copysign(t * 10 ** (abs(u) - lin), u)


def _range(values: Sequence[float], *, zero: bool = True, pad: float = 0.05) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo or max(abs(hi), 1.0)
    return (lo if zero and lo == 0 else lo - pad * span), hi + pad * span


class _Canvas:
    """Collects SVG elements in the plot frame and lays out margins, title and legend."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.left, self.right, self.top = 64.0, 16.0, 30.0
        self.bottom = 40.0
        self.height = _H
        self.width = _W

    # frame ---------------------------------------------------------------------------------
    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:  # bottom of the plot area (pixels grow downwards)
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top

    def reserve_labels(self, labels: Sequence[str], rotate: bool) -> None:
        """Grow the figure downwards so the x labels (rotated 45° when crowded) fit."""
        longest = max((len(s) for s in labels), default=1)
        if rotate:
            self.bottom = 26.0 + longest * _CHAR * math.sqrt(0.5) + _FONT
        self.height = _H - 40.0 + self.bottom

    # drawing -------------------------------------------------------------------------------
    def add(self, element: str) -> None:
        self.parts.append(element)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, opacity: float = 1) -> None:
        if w <= 0 or h <= 0:
            return
        op = f' fill-opacity="{opacity:g}"' if opacity < 1 else ""
        self.add(
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
            f'fill="{fill}"{op}/>'
        )

    def line(
        self, x1: float, y1: float, x2: float, y2: float, color: str, dash: bool | str = False
    ) -> None:
        """A line; ``dash`` True for dashes, or an SVG ``stroke-dasharray`` (``"1 3"``: dots)."""
        pattern = dash if isinstance(dash, str) else "4 3" if dash else ""
        d = f' stroke-dasharray="{pattern}"' if pattern else ""
        self.add(
            f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
            f'stroke="{color}"{d}/>'
        )

    def path(self, points: list[tuple[float, float]], color: str, width: float = 1.5) -> None:
        if len(points) < 2:
            return
        d = "M" + " L".join(f"{_num(x)} {_num(y)}" for x, y in points)
        self.add(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width:g}"/>')

    def area(self, points: list[tuple[float, float]], color: str, opacity: float) -> None:
        if len(points) < 2:
            return
        d = "M" + " L".join(f"{_num(x)} {_num(y)}" for x, y in points) + " Z"
        self.add(f'<path d="{d}" fill="{color}" fill-opacity="{opacity:g}" stroke="none"/>')

    def text(
        self,
        x: float,
        y: float,
        s: str,
        *,
        anchor: str = "middle",
        size: float = _FONT,
        rotate: float = 0,
        color: str = "#333",
    ) -> None:
        tr = f' transform="rotate({rotate:g} {_num(x)} {_num(y)})"' if rotate else ""
        self.add(
            f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size:g}" '
            f'fill="{color}"{tr}>{_xml(s)}</text>'
        )

    def y_axis(self, ax: _Axis, label: str, *, right: bool = False, color: str = "#333") -> None:
        x = self.x1 if right else self.x0
        self.line(x, self.y0, x, self.y1, "#888")
        for v in ax.ticks(5):
            y = ax(v)
            self.line(x, y, x + (4 if right else -4), y, "#888")
            if not right:
                self.line(self.x0, y, self.x1, y, "#eee")
            anchor = "start" if right else "end"
            self.text(x + (7 if right else -7), y + 4, tick_text(v), anchor=anchor, size=10)
        if label:
            xl = x + (self.right - 8) if right else 14.0
            ym = (self.y0 + self.y1) / 2
            self.text(xl, ym, _short(label), rotate=-90, color=color)

    def x_ticks(self, ax: _Axis) -> None:
        self.line(self.x0, self.y0, self.x1, self.y0, "#888")
        for v in ax.ticks(7):
            x = ax(v)
            self.line(x, self.y0, x, self.y0 + 4, "#888")
            self.text(x, self.y0 + 16, tick_text(v), size=10)

    def x_labels(self, centres: Sequence[float], labels: Sequence[str], rotate: bool) -> None:
        self.line(self.x0, self.y0, self.x1, self.y0, "#888")
        for x, s in zip(centres, labels, strict=True):
            if rotate:
                self.text(x + 3, self.y0 + 12, s, anchor="end", size=10, rotate=-45)
            else:
                self.text(x, self.y0 + 16, s, size=10)

    def x_title(self, label: str) -> None:
        if label:
            self.text((self.x0 + self.x1) / 2, self.height - 6, _fit(label, self.x1 - self.x0))

    def legend(
        self,
        names: Sequence[str],
        colors: Sequence[tuple[str, float]] | None = None,
        points: Sequence[tuple[float, float]] = (),
    ) -> None:
        """A box of the series' names and colours (``(colour, opacity)`` each; the palette's
        when omitted), for two series or more: in the top right corner, or in the corner that
        covers the fewest of ``points`` (pixels), as matplotlib's ``loc="best"``."""
        if len(names) < 2:
            return
        if colors is None:
            colors = [(_COLORS[i % len(_COLORS)], 1.0) for i in range(len(names))]
        width = max(len(_short(n)) for n in names) * _CHAR + 30
        height = 16.0 * len(names) + 6
        corners = [
            (self.x1 - width - 6, self.y1 + 6),
            (self.x0 + 6, self.y1 + 6),
            (self.x1 - width - 6, self.y0 - height - 6),
            (self.x0 + 6, self.y0 - height - 6),
        ]

        def covered(corner: tuple[float, float]) -> int:
            cx, cy = corner
            return sum(cx <= px <= cx + width and cy <= py <= cy + height for px, py in points)

        x, y = min(corners, key=covered)  # the first of the least covered: top right first
        self.rect(x, y, width, height, "#fff", 0.85)
        for i, (n, (color, opacity)) in enumerate(zip(names, colors, strict=True)):
            yy = y + 14 + 16 * i
            self.rect(x + 6, yy - 8, 12, 8, color, opacity)
            self.text(x + 22, yy, _short(n), anchor="start", size=10)

    def svg(self) -> str:
        h, w = _num(self.height), _num(self.width)
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {w} {h}" '
            f'width="{w}" height="{h}" role="img" aria-label="{_xml(self.title)}" '
            'font-family="Helvetica, Arial, sans-serif">'
            f"<title>{_xml(self.title)}</title>"
        )
        title = (
            f'<text x="{_num((self.x0 + self.x1) / 2)}" y="18" text-anchor="middle" '
            f'font-size="12" fill="#111">{_xml(_fit(self.title, self.width - 20, 12.0))}</text>'
        )
        return head + title + "".join(self.parts) + "</svg>"


def _fit(text: str, width: float, size: float = _FONT) -> str:
    """The text, cut with an ellipsis to about ``width`` pixels."""
    limit = max(int(width / (0.6 * size)), 4)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _crowded(labels: Sequence[str]) -> bool:
    return sum(len(t) + 2 for t in labels) > 60 or max((len(t) for t in labels), default=0) > 12


# --------------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------------
@_register("hist")
def _hist(c: _Canvas, d: dict[str, Any]) -> None:
    edges = np.asarray(d["edges"], dtype=float)
    series = {str(k): np.asarray(v, dtype=float) for k, v in d["series"].items()}
    if d.get("density"):
        series = {k: v / max(v.sum(), 1.0) for k, v in series.items()}
    for v in series.values():
        if len(v) != len(edges) - 1:
            raise ValueError(f"hist: {len(edges)} edges need {len(edges) - 1} counts, got {len(v)}")
    symlog = float(d.get("linthresh", 1.0)) if d.get("xscale") == "symlog" else None
    ylabel = d.get("ylabel", "share" if d.get("density") else "rows")
    c.bottom = 40.0
    xa = _Axis(float(edges[0]), float(edges[-1]), c.x0, c.x1, symlog=symlog)
    top = max((float(v.max()) for v in series.values() if v.size), default=1.0)
    ya = _Axis(*_range([0.0, top]), c.y0, c.y1)
    c.y_axis(ya, ylabel)
    for i, (_name, v) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        pts: list[tuple[float, float]] = [(xa(edges[0]), ya(0.0))]
        for k, h in enumerate(v):
            pts += [(xa(edges[k]), ya(h)), (xa(edges[k + 1]), ya(h))]
        pts.append((xa(edges[-1]), ya(0.0)))
        if i == 0:
            c.area(pts, color, 0.5)
        else:
            c.path(pts, color)
    c.x_ticks(xa)
    c.x_title(d.get("xlabel", ""))
    c.legend(list(series))


@_register("bar")
def _bar(c: _Canvas, d: dict[str, Any]) -> None:
    labels = [_short(str(x)) for x in d["labels"]]
    series = {
        str(k): [math.nan if v is None else float(v) for v in vals]
        for k, vals in d["series"].items()
    }
    for given in series.values():
        if len(given) != len(labels):
            raise ValueError(f"bar: {len(labels)} labels need as many values, got {len(given)}")
    errs = {str(k): _error_bars(v, len(labels)) for k, v in d.get("errors", {}).items()}
    rotate = bool(d.get("rotation", 45 if _crowded(labels) else 0))
    c.reserve_labels(labels, rotate)
    tops = [v for vals in series.values() for v in vals if math.isfinite(v)]
    for name, (below, above) in errs.items():
        vals = series.get(name, [])
        tops += [v + e for v, e in zip(vals, above, strict=False) if math.isfinite(v + e)]
        tops += [v - e for v, e in zip(vals, below, strict=False) if math.isfinite(v - e)]
    if d.get("hline") is not None:
        tops.append(float(d["hline"]))
    ya = _Axis(*_range(tops), c.y0, c.y1)
    c.y_axis(ya, d.get("ylabel", ""))
    n, k = len(labels), max(len(series), 1)
    slot = (c.x1 - c.x0) / max(n, 1)
    w = 0.8 * slot / k
    for i, (name, vals) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        for j, v in enumerate(vals):
            if not math.isfinite(v):
                continue
            x = c.x0 + slot * (j + 0.5) + (i - (k - 1) / 2) * w
            y, y_zero = ya(max(v, 0.0)), ya(min(v, 0.0))
            c.rect(x - w / 2, y, w, y_zero - y, color)
            if name in errs:
                e_lo, e_hi = errs[name][0][j], errs[name][1][j]
                if math.isfinite(e_lo) and math.isfinite(e_hi):
                    c.line(x, ya(v - e_lo), x, ya(v + e_hi), "#333")
    if d.get("hline") is not None:
        c.line(c.x0, ya(float(d["hline"])), c.x1, ya(float(d["hline"])), "#888", dash=True)
    c.x_labels([c.x0 + slot * (j + 0.5) for j in range(n)], labels, rotate)
    c.legend(list(series))


def _error_bars(err: Any, n: int) -> tuple[list[float], list[float]]:
    """Error bar lengths below and above each bar: one list (symmetric) or two (as
    matplotlib's ``yerr`` of shape (2, n))."""

    def floats(v: Sequence[Any]) -> list[float]:
        return [math.nan if x is None else float(x) for x in v]

    if len(err) == 2 and isinstance(err[0], list | tuple):
        down, up = floats(err[0]), floats(err[1])
    else:
        down = up = floats(err)
    if len(down) != n or len(up) != n:
        raise ValueError(f"bar: error bars for {n} bars expected, got {len(down)}")
    return down, up


@_register("barh")
def _barh(c: _Canvas, d: dict[str, Any]) -> None:
    labels = [_short(str(x)) for x in d["labels"]]
    vals = [math.nan if v is None else float(v) for v in d["values"]]
    if len(vals) != len(labels):
        raise ValueError(f"barh: {len(labels)} labels need as many values, got {len(vals)}")
    colors = d.get("colors") or [_COLORS[0]] * len(vals)
    longest = max((len(s) for s in labels), default=1)
    c.left = min(12.0 + longest * 0.6 * 10, _W / 2)
    c.height = max(_H, c.top + c.bottom + 18.0 * len(labels))
    lim = d.get("xlim")
    extra = [] if d.get("vline") is None else [float(d["vline"])]
    lo, hi = (float(lim[0]), float(lim[1])) if lim is not None else _range(vals + extra)
    xa = _Axis(lo, hi, c.x0, c.x1)
    slot = (c.y0 - c.y1) / max(len(labels), 1)
    c.line(c.x0, c.y0, c.x0, c.y1, "#888")
    for i, (label, v) in enumerate(zip(labels, vals, strict=True)):
        y = c.y1 + slot * (i + 0.5)
        if math.isfinite(v):
            a, b = sorted((xa(min(max(lo, 0.0), hi)), xa(v)))
            a, b = max(a, c.x0), min(b, c.x1)
            c.rect(a, y - 0.4 * slot, b - a, 0.8 * slot, str(colors[i % len(colors)]))
        c.text(c.x0 - 6, y + 4, label, anchor="end", size=10)
    if d.get("vline") is not None:
        xv = xa(float(d["vline"]))
        c.line(xv, c.y0, xv, c.y1, "#888", dash=True)
    c.x_ticks(xa)
    c.x_title(d.get("xlabel", ""))


@_register("rate")
def _rate(c: _Canvas, d: dict[str, Any]) -> None:
    labels = [_short(str(x)) for x in d["labels"]]
    counts = [float(v) for v in d["counts"]]
    rates = [math.nan if v is None else float(v) for v in d["rates"]]
    if len(counts) != len(labels) or len(rates) != len(labels):
        raise ValueError("rate: labels, counts and rates must have the same length")
    low = d.get("low")
    high = d.get("high")
    rotate = _crowded(labels)
    c.right = 64.0
    c.reserve_labels(labels, rotate)
    ya = _Axis(*_range(counts), c.y0, c.y1)
    c.y_axis(ya, d.get("count_label", "rows"))
    finite = [r for r in rates if math.isfinite(r)]
    if high is not None:
        finite += [float(h) for h in high if h is not None and math.isfinite(float(h))]
    if d.get("base_rate") is not None:
        finite.append(float(d["base_rate"]))
    ra = _Axis(*_range(finite), c.y0, c.y1)
    red = _COLORS[1]
    n = len(labels)
    slot = (c.x1 - c.x0) / max(n, 1)
    centres = [c.x0 + slot * (j + 0.5) for j in range(n)]
    for x, v in zip(centres, counts, strict=True):
        c.rect(x - 0.4 * slot, ya(v), 0.8 * slot, ya(0.0) - ya(v), "#d9d9d9")
    if d.get("base_rate") is not None:
        yb = ra(float(d["base_rate"]))
        c.line(c.x0, yb, c.x1, yb, "#888", dash=True)
    pts = [(x, ra(r)) for x, r in zip(centres, rates, strict=True) if math.isfinite(r)]
    c.path(pts, red, 1.2)
    for j, (x, r) in enumerate(zip(centres, rates, strict=True)):
        if not math.isfinite(r):
            continue
        if low is not None and high is not None:
            lo, hi = low[j], high[j]
            if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
                c.line(x, ra(min(float(lo), r)), x, ra(max(float(hi), r)), red)
        c.add(f'<circle cx="{_num(x)}" cy="{_num(ra(r))}" r="3" fill="{red}"/>')
    c.y_axis(ra, d.get("ylabel", "rate"), right=True, color=red)
    c.x_labels(centres, labels, rotate)
    c.x_title(d.get("xlabel", ""))


def _floats(values: Sequence[Any]) -> list[float]:
    """Numbers as floats, ``None`` as NaN (a gap)."""
    return [math.nan if v is None else float(v) for v in values]


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _segments(
    xs: Sequence[float], ys: Sequence[float], xa: _Axis, ya: _Axis
) -> list[list[tuple[float, float]]]:
    """The points of a line in pixels, split where a value is missing (as matplotlib leaves a
    gap at a NaN)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if math.isfinite(x) and math.isfinite(y):
            runs[-1].append((xa(x), ya(y)))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _along(run: list[tuple[float, float]], step: float = 8.0) -> list[tuple[float, float]]:
    """Points every ``step`` pixels along a polyline (a legend box between two far-apart
    points of a line still covers the line)."""
    out = list(run[:1])
    for (xa, ya), (xb, yb) in itertools.pairwise(run):
        k = max(int(math.hypot(xb - xa, yb - ya) / step), 1)
        out += [(xa + (xb - xa) * t / k, ya + (yb - ya) * t / k) for t in range(1, k + 1)]
    return out


def _diagonal(c: _Canvas, d: dict[str, Any], xa: _Axis, ya: _Axis) -> None:
    if d.get("diagonal"):
        lo, hi = (float(v) for v in d["diagonal"])
        c.line(xa(lo), ya(lo), xa(hi), ya(hi), "#888", dash=True)


@_register("line")
def _line(c: _Canvas, d: dict[str, Any]) -> None:
    """Series over a shared x (gaps at missing values; dots at 30 points or fewer), with an
    optional band, vertical lines (dotted), a horizontal line and a diagonal (dashed)."""
    log = bool(d.get("logx"))
    xs = _floats(d["x"])
    if log:  # a logarithmic axis leaves out what it cannot place, as matplotlib does
        xs = [v if v > 0 else math.nan for v in xs]
    series = {str(k): _floats(v) for k, v in d["series"].items()}
    band = d.get("band")
    lows = _floats(band["low"]) if band else []
    highs = _floats(band["high"]) if band else []
    for name, ys in [*series.items(), ("band", lows), ("band", highs)]:
        if ys and len(ys) != len(xs):
            raise ValueError(f"line: {len(xs)} x values need as many in {name!r}, got {len(ys)}")
    diag = [float(v) for v in d.get("diagonal") or []]
    vlines = [float(v) for v in d.get("vlines", [])]
    ytops = [v for ys in series.values() for v in ys] + lows + highs + diag
    if d.get("hline") is not None:
        ytops.append(float(d["hline"]))
    xspan = xs + vlines + diag
    if log:
        xspan = [math.log10(v) for v in xspan if v > 0]
    lo, hi = _range(xspan, zero=False)
    xa = _Axis(10**lo if log else lo, 10**hi if log else hi, c.x0, c.x1, log=log)
    ya = _Axis(*_range(ytops, zero=False), c.y0, c.y1)
    c.y_axis(ya, d.get("ylabel", ""))
    names: list[str] = []
    colors: list[tuple[str, float]] = []
    drawn: list[tuple[float, float]] = []  # where the legend should not go
    if band:
        for run_hi, run_lo in zip(
            _segments(xs, highs, xa, ya), _segments(xs, lows, xa, ya), strict=False
        ):
            c.area(run_hi + run_lo[::-1], _COLORS[0], 0.15)
            drawn += run_hi + run_lo
    for i, (name, ys) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        for run in _segments(xs, ys, xa, ya):
            c.path(run, color)
            drawn += _along(run)
            if len(xs) <= 30:
                for x, y in run:
                    c.add(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="2.5" fill="{color}"/>')
        names.append(name)
        colors.append((color, 1.0))
    if band:
        names.append(str(band.get("label") or "band"))
        colors.append((_COLORS[0], 0.15))
    for v in vlines:
        c.line(xa(v), c.y0, xa(v), c.y1, _COLORS[1], dash="1 3")
    if d.get("hline") is not None:
        y = ya(float(d["hline"]))
        c.line(c.x0, y, c.x1, y, "#888", dash=True)
    _diagonal(c, d, xa, ya)
    c.x_ticks(xa)
    c.x_title(d.get("xlabel", ""))
    c.legend(names, colors, drawn)


@_register("scatter")
def _scatter(c: _Canvas, d: dict[str, Any]) -> None:
    """Dots of one colour (translucent: where many overlap the colour deepens), and an optional
    dashed diagonal."""
    xs, ys = _floats(d["x"]), _floats(d["y"])
    if len(xs) != len(ys):
        raise ValueError(f"scatter: {len(xs)} x values need as many y values, got {len(ys)}")
    diag = [float(v) for v in d.get("diagonal") or []]
    xa = _Axis(*_range(xs + diag, zero=False), c.x0, c.x1)
    ya = _Axis(*_range(ys + diag, zero=False), c.y0, c.y1)
    c.y_axis(ya, d.get("ylabel", ""))
    # matplotlib's size is an area in points squared; its radius in pixels at the PNG's scale
    r = max(math.sqrt(float(d.get("size", 6))) / 2 * 1.25, 1.0)
    alpha = float(d.get("alpha", 0.5))
    dots = "".join(
        f'<circle cx="{_num(xa(x))}" cy="{_num(ya(y))}" r="{_num(r)}"/>'
        for x, y in zip(xs, ys, strict=True)
        if math.isfinite(x) and math.isfinite(y)
    )
    c.add(f'<g fill="{_xml(str(d.get("color", _COLORS[0])))}" fill-opacity="{alpha:g}">{dots}</g>')
    _diagonal(c, d, xa, ya)
    c.x_ticks(xa)
    c.x_title(d.get("xlabel", ""))


@_register("heatmap")
def _heatmap(c: _Canvas, d: dict[str, Any]) -> None:
    """A matrix of coloured cells (``RdBu_r`` from ``vmin`` to ``vmax``: blue low, red high; a
    missing value left blank), labelled rows and columns, values written in the cells when
    ``annotate``, each cell's value in its tooltip, and a colour bar."""
    m = np.asarray(d["matrix"], dtype=float)
    if m.ndim != 2:
        raise ValueError(f"heatmap: a matrix of rows and columns expected, got {m.ndim} dims")
    xlabels = [_short(str(x)) for x in d["labels"]]
    ylabels = [_short(str(x)) for x in d.get("ylabels", d["labels"])]
    k, n = m.shape
    if len(xlabels) != n or len(ylabels) != k:
        raise ValueError(
            f"heatmap: a {k} x {n} matrix needs {n} column and {k} row labels, got "
            f"{len(xlabels)} and {len(ylabels)}"
        )
    vmin, vmax = float(d.get("vmin", -1)), float(d.get("vmax", 1))
    reverse = d.get("cmap", "RdBu_r") == "RdBu_r"
    longest_x = max((len(s) for s in xlabels), default=1)
    longest_y = max((len(s) for s in ylabels), default=1)
    cell = min(max(420.0 / max(n, k, 1), 8.0), 60.0)
    c.left = 10.0 + longest_y * 0.6 * 9
    c.top = 30.0
    c.bottom = 10.0 + longest_x * 0.6 * 9
    c.right = 64.0  # the colour bar and its ticks
    c.width = c.left + cell * n + c.right
    c.height = c.top + cell * k + c.bottom
    size = min(11.0, max(cell * 0.32, 5.0))
    for i in range(k):
        for j in range(n):
            v = m[i, j]
            if not math.isfinite(v):
                continue
            x, y = c.x0 + cell * j, c.y1 + cell * i
            tip = _xml(f"{ylabels[i]} × {xlabels[j]}: {v:.3g}")
            c.add(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(cell)}" height="{_num(cell)}" '
                f'fill="{diverging_color(v, vmin, vmax, reverse=reverse)}"><title>{tip}</title>'
                "</rect>"
            )
            if d.get("annotate"):
                ink = "white" if abs(v) > 0.6 else "black"
                c.text(x + cell / 2, y + cell / 2 + size / 3, f"{v:.2f}", size=size, color=ink)
    for j, s in enumerate(xlabels):
        x = c.x0 + cell * (j + 0.5)
        c.text(x + 3, c.y0 + 6, s, anchor="end", size=9, rotate=-90)
    for i, s in enumerate(ylabels):
        c.text(c.x0 - 5, c.y1 + cell * (i + 0.5) + 3, s, anchor="end", size=9)
    _color_bar(c, vmin, vmax, reverse)


def _color_bar(c: _Canvas, vmin: float, vmax: float, reverse: bool) -> None:
    """The colour map as a bar of 64 bands right of the cells, with ticks."""
    x, w = c.x1 + 12, 12.0
    top, bottom = c.y1, c.y0
    steps = 64
    h = (bottom - top) / steps
    for s in range(steps):
        v = vmax - (s + 0.5) / steps * (vmax - vmin)
        c.rect(x, top + s * h, w, h + 0.5, diverging_color(v, vmin, vmax, reverse=reverse))
    axis = _Axis(vmin, vmax, bottom, top)
    for v in axis.ticks(5):
        y = axis(v)
        c.line(x + w, y, x + w + 3, y, "#888")
        c.text(x + w + 5, y + 3, tick_text(v), anchor="start", size=9)
