"""Renderers from :class:`~tabguard.reports.PlotSpec` data to PNG images (matplotlib, Agg).

Each renderer is registered under a ``kind``; other modules add their own kinds (e.g. the SHAP
beeswarm of the model audit) with :func:`register_renderer`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from tabguard.reports._model import PlotSpec

Renderer = Callable[[Any, dict[str, Any]], None]
_RENDERERS: dict[str, Renderer] = {}

_COLORS = ["#1f4e79", "#c0504d", "#4f9d69", "#e8a33d", "#7f5fa8", "#5a5a5a"]


def register_renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register ``fn(ax, data)`` as the renderer of plots of ``kind``."""

    def deco(fn: Renderer) -> Renderer:
        _RENDERERS[kind] = fn
        return fn

    return deco


_FIGURE: list[Any] = []


def _figure_classes() -> tuple[Any, Any]:
    """matplotlib's ``Figure`` and Agg canvas, imported on the first plot drawn.

    Importing matplotlib takes about a third of a second of the interpreter's lock, and
    ``tabguard audit data`` imports the report modules while it reads the data in a thread: the
    read waited for it. The report is drawn at the end, beside the writing of the clean rows.
    """
    if not _FIGURE:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        _FIGURE[:] = [Figure, FigureCanvasAgg]
    return _FIGURE[0], _FIGURE[1]


def render_png(spec: PlotSpec, *, width: float = 6.4, height: float = 3.6) -> bytes:
    """Draw a plot spec and return PNG bytes.

    Raises
    ------
    KeyError
        When no renderer is registered for ``spec.kind``.
    """
    if spec.kind not in _RENDERERS:
        raise KeyError(f"no renderer for plot kind {spec.kind!r}; known: {sorted(_RENDERERS)}")
    size = spec.data.get("figsize", (width, height))
    # a figure of its own, outside pyplot's global state: reports may be drawn in a thread
    figure, canvas = _figure_classes()
    fig = figure(figsize=tuple(size))
    canvas(fig)
    ax = fig.subplots()
    _RENDERERS[spec.kind](ax, spec.data)
    ax.set_title(spec.title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def render_base64(spec: PlotSpec) -> str:
    """PNG of a plot spec as base64 text (for inline ``<img>``)."""
    return base64.b64encode(render_png(spec)).decode("ascii")


def _crowded(labels: list[str]) -> bool:
    """Whether tick labels need rotating to stay readable (long or many)."""
    return sum(len(t) + 2 for t in labels) > 60 or max((len(t) for t in labels), default=0) > 12


@register_renderer("hist")
def _hist(ax: Any, d: dict[str, Any]) -> None:
    edges = np.asarray(d["edges"], dtype=float)
    for i, (name, counts) in enumerate(d["series"].items()):
        c = np.asarray(counts, dtype=float)
        if d.get("density"):
            c = c / max(c.sum(), 1)
        ax.stairs(
            c,
            edges,
            label=str(name),
            color=_COLORS[i % len(_COLORS)],
            fill=i == 0,
            alpha=0.5 if i == 0 else 1.0,
        )
    if d.get("xscale") == "symlog":
        ax.set_xscale("symlog", linthresh=d.get("linthresh", 1.0))
    elif d.get("xscale"):
        ax.set_xscale(d["xscale"])
    if len(d["series"]) > 1:
        ax.legend(fontsize=8)
    ax.set_xlabel(d.get("xlabel", ""))
    ax.set_ylabel(d.get("ylabel", "share" if d.get("density") else "rows"))


@register_renderer("bar")
def _bar(ax: Any, d: dict[str, Any]) -> None:
    labels = [str(x) for x in d["labels"]]
    series: dict[str, list[float]] = d["series"]
    k = len(series)
    x = np.arange(len(labels))
    w = 0.8 / max(k, 1)
    errs = d.get("errors", {})
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(
            x + (i - (k - 1) / 2) * w,
            vals,
            width=w,
            label=str(name),
            color=_COLORS[i % len(_COLORS)],
            yerr=errs.get(name),
        )
    rotate = d.get("rotation", 45 if _crowded(labels) else 0)
    ax.set_xticks(x, labels, rotation=rotate, ha="right" if rotate else "center", fontsize=8)
    if d.get("hline") is not None:
        ax.axhline(d["hline"], color="#888", linestyle="--", linewidth=1)
    if k > 1:
        ax.legend(fontsize=8)
    ax.set_ylabel(d.get("ylabel", ""))


@register_renderer("barh")
def _barh(ax: Any, d: dict[str, Any]) -> None:
    labels = [str(x) for x in d["labels"]][::-1]
    vals = list(d["values"])[::-1]
    colors = d.get("colors")
    ax.barh(labels, vals, color=(colors[::-1] if colors else _COLORS[0]))
    if d.get("vline") is not None:
        ax.axvline(d["vline"], color="#888", linestyle="--", linewidth=1)
    if d.get("xlim") is not None:
        ax.set_xlim(*d["xlim"])
    ax.set_xlabel(d.get("xlabel", ""))
    ax.tick_params(axis="y", labelsize=8)


@register_renderer("line")
def _line(ax: Any, d: dict[str, Any]) -> None:
    x = d["x"]
    for i, (name, ys) in enumerate(d["series"].items()):
        ax.plot(
            x,
            ys,
            label=str(name),
            color=_COLORS[i % len(_COLORS)],
            marker="o" if len(x) <= 30 else None,
            markersize=3,
        )
    band = d.get("band")
    if band:
        ax.fill_between(
            x, band["low"], band["high"], color="#1f4e79", alpha=0.15, label=band.get("label")
        )
    for v in d.get("vlines", []):
        ax.axvline(v, color="#c0504d", linestyle=":", linewidth=1)
    if d.get("hline") is not None:
        ax.axhline(d["hline"], color="#888", linestyle="--", linewidth=1)
    if d.get("diagonal"):
        lo, hi = d["diagonal"]
        ax.plot([lo, hi], [lo, hi], color="#888", linestyle="--", linewidth=1)
    if d.get("logx"):
        ax.set_xscale("log")
    if len(d["series"]) > 1 or band:
        ax.legend(fontsize=8)
    ax.set_xlabel(d.get("xlabel", ""))
    ax.set_ylabel(d.get("ylabel", ""))


@register_renderer("scatter")
def _scatter(ax: Any, d: dict[str, Any]) -> None:
    ax.scatter(
        d["x"], d["y"], s=d.get("size", 6), alpha=d.get("alpha", 0.5), c=d.get("color", _COLORS[0])
    )
    if d.get("diagonal"):
        lo, hi = d["diagonal"]
        ax.plot([lo, hi], [lo, hi], color="#888", linestyle="--", linewidth=1)
    ax.set_xlabel(d.get("xlabel", ""))
    ax.set_ylabel(d.get("ylabel", ""))


@register_renderer("heatmap")
def _heatmap(ax: Any, d: dict[str, Any]) -> None:
    m = np.asarray(d["matrix"], dtype=float)
    im = ax.imshow(m, cmap=d.get("cmap", "RdBu_r"), vmin=d.get("vmin", -1), vmax=d.get("vmax", 1))
    labels = [str(x) for x in d["labels"]]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(d.get("ylabels", labels))), d.get("ylabels", labels), fontsize=6)
    if d.get("annotate"):
        # Values in the cells: readable for small matrices only (the caller decides).
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(v) > 0.6 else "black",
                )
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


@register_renderer("rate")
def _rate(ax: Any, d: dict[str, Any]) -> None:
    """Rows per bin (bars, left axis) and a rate with its interval (points, right axis)."""
    labels = [str(x) for x in d["labels"]]
    x = np.arange(len(labels))
    ax.bar(x, d["counts"], color="#d9d9d9", width=0.8, label="rows")
    ax.set_ylabel(d.get("count_label", "rows"))
    rates = np.asarray(d["rates"], dtype=float)
    r = ax.twinx()
    if d.get("low") is not None and d.get("high") is not None:
        low = np.asarray(d["low"], dtype=float)
        high = np.asarray(d["high"], dtype=float)
        err = np.vstack([np.clip(rates - low, 0, None), np.clip(high - rates, 0, None)])
        r.errorbar(x, rates, yerr=err, fmt="o-", color=_COLORS[1], ms=4, lw=1.2, capsize=2)
    else:
        r.plot(x, rates, "o-", color=_COLORS[1], ms=4, lw=1.2)
    if d.get("base_rate") is not None:
        r.axhline(d["base_rate"], color="#888", linestyle="--", linewidth=1)
    r.set_ylim(bottom=0)
    r.set_ylabel(d.get("ylabel", "rate"), color=_COLORS[1])
    rotate = _crowded(labels)
    ax.set_xticks(
        x, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=7
    )
    ax.set_xlabel(d.get("xlabel", ""))
