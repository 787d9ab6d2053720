"""Tick positions and heatmap colours as matplotlib computes them, without importing it.

The report's SVG figures (:mod:`tabguard.reports._svg`) place ticks with matplotlib's
``MaxNLocator`` and colour heatmaps with its ``RdBu`` colour map. Importing matplotlib for those
numbers costs a data audit about a second of CPU (its import, the font list, the colour maps),
so both are computed here: the locator's algorithm (matplotlib 3.x ``ticker.MaxNLocator`` with
the default ``axes.autolimit_mode: data``) and the colour map's 256-entry lookup table, from the
eleven ColorBrewer colours matplotlib interpolates. ``tests/reports/test_scales.py`` checks both
against matplotlib itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# ColorBrewer's RdBu (dark red to dark blue), matplotlib's ``_RdBu_data``: channels in 255ths
_RDBU = [
    (103, 0, 31),
    (178, 24, 43),
    (214, 96, 77),
    (244, 165, 130),
    (253, 219, 199),
    (247, 247, 247),
    (209, 229, 240),
    (146, 197, 222),
    (67, 147, 195),
    (33, 102, 172),
    (5, 48, 97),
]
_LUT_SIZE = 256  # matplotlib's rcParams["image.lut"]
_LUT: list[list[str]] = []  # hex colours: [RdBu, RdBu_r], built on first use


def _lookup_tables() -> list[list[str]]:
    """The colour map sampled at 256 points as matplotlib's ``LinearSegmentedColormap
    .from_list`` does (linear between evenly spaced anchors), as ``#rrggbb``."""
    if not _LUT:
        anchors = np.array(_RDBU, dtype=float) / 255.0
        at = np.linspace(0, 1, len(_RDBU))
        xind = np.linspace(0, 1, _LUT_SIZE)
        ind = np.searchsorted(at, xind)[1:-1]
        distance = (xind[1:-1] - at[ind - 1]) / (at[ind] - at[ind - 1])
        channels = []
        for ch in range(3):
            y = anchors[:, ch]
            inner = distance * (y[ind] - y[ind - 1]) + y[ind - 1]
            channels.append(np.clip(np.concatenate([[y[0]], inner, [y[-1]]]), 0.0, 1.0))
        table = [
            "#" + "".join(format(round(float(c[i]) * 255), "02x") for c in channels)
            for i in range(_LUT_SIZE)
        ]
        _LUT[:] = [table, table[::-1]]
    return _LUT


def diverging_color(value: float, vmin: float, vmax: float, *, reverse: bool = True) -> str:
    """The ``RdBu_r`` colour (``RdBu`` when not ``reverse``) of ``value`` on ``[vmin, vmax]``.

    As matplotlib's ``imshow(cmap=..., vmin=..., vmax=...)``: the value normalised to [0, 1]
    picks one of 256 entries; values outside the range take the end colours.

    Examples
    --------
    >>> diverging_color(1.0, -1, 1), diverging_color(0.0, -1, 1), diverging_color(-1.0, -1, 1)
    ('#67001f', '#f7f6f6', '#053061')
    """
    table = _lookup_tables()[1 if reverse else 0]
    x = (value - vmin) / (vmax - vmin) if vmax != vmin else 0.0
    i = x * _LUT_SIZE
    i = _LUT_SIZE - 1 if i >= _LUT_SIZE - 1 else 0 if i < 0 else int(i)
    return table[i]


def _nonsingular(vmin: float, vmax: float, expander: float, tiny: float) -> tuple[float, float]:
    """matplotlib's ``transforms.nonsingular`` (increasing): a range of some width."""
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        return -expander, expander
    vmin, vmax = sorted((float(vmin), float(vmax)))
    maxabs = max(abs(vmin), abs(vmax))
    if maxabs < (1e6 / tiny) * np.finfo(float).tiny:
        return -expander, expander
    if vmax - vmin <= maxabs * tiny:
        if vmax == 0 and vmin == 0:
            return -expander, expander
        return vmin - expander * abs(vmin), vmax + expander * abs(vmax)
    return vmin, vmax


def _scale_range(vmin: float, vmax: float, n: int, threshold: float = 100) -> tuple[float, float]:
    dv = abs(vmax - vmin)
    meanv = (vmax + vmin) / 2
    if abs(meanv) / dv < threshold:
        offset = 0.0
    else:
        offset = math.copysign(10 ** (math.log10(abs(meanv)) // 1), meanv)
    return 10 ** (math.log10(dv / n) // 1), offset


class _EdgeInteger:
    """matplotlib's ``_Edge_integer``: how many steps fit, forgiving rounding error."""

    def __init__(self, step: float, offset: float) -> None:
        self.step = step
        self._offset = abs(offset)

    def _closeto(self, ms: float, edge: float) -> bool:
        if self._offset > 0:
            digits = np.log10(self._offset / self.step)
            tol = min(0.4999, max(1e-10, 10 ** (digits - 12)))
        else:
            tol = 1e-10
        return bool(abs(ms - edge) < tol)

    def le(self, x: float) -> float:
        d, m = divmod(x, self.step)
        return d + 1 if self._closeto(m / self.step, 1) else d

    def ge(self, x: float) -> float:
        d, m = divmod(x, self.step)
        return d if self._closeto(m / self.step, 0) else d + 1


def max_n_ticks(
    vmin: float, vmax: float, *, nbins: int, steps: Sequence[float], min_n_ticks: int = 2
) -> list[float]:
    """Tick values of matplotlib's ``MaxNLocator(nbins=nbins, steps=steps).tick_values``.

    At most ``nbins`` intervals at a multiple of a step times a power of ten, the first tick
    at or below ``vmin`` and the last at or above ``vmax``.

    Examples
    --------
    >>> max_n_ticks(0.0, 1.0, nbins=5, steps=[1, 2, 2.5, 5, 10])
    [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    """
    given = np.asarray(steps, dtype=float)
    if given[0] != 1:
        given = np.concatenate([[1.0], given])
    if given[-1] != 10:
        given = np.concatenate([given, [10.0]])
    extended = np.concatenate([0.1 * given[:-1], given, [10 * given[1]]])
    vmin, vmax = _nonsingular(vmin, vmax, expander=1e-13, tiny=1e-14)
    scale, offset = _scale_range(vmin, vmax, nbins)
    _vmin, _vmax = vmin - offset, vmax - offset
    candidates = extended * scale
    raw_step = (_vmax - _vmin) / nbins
    large = np.nonzero(candidates >= raw_step)[0]
    istep = int(large[0]) if len(large) else len(candidates) - 1
    ticks = np.empty(0)
    for step in candidates[: istep + 1][::-1]:
        best_vmin = (_vmin // step) * step
        edge = _EdgeInteger(step, offset)
        low = edge.le(_vmin - best_vmin)
        high = edge.ge(_vmax - best_vmin)
        ticks = np.arange(low, high + 1) * step + best_vmin
        if ((ticks <= _vmax) & (ticks >= _vmin)).sum() >= min_n_ticks:
            break
    return [float(t) for t in ticks + offset]
