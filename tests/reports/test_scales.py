"""The SVG figures' ticks and heatmap colours are matplotlib's, computed without it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.reports._scales import diverging_color, max_n_ticks

STEPS = [1, 2, 2.5, 5, 10]


@settings(max_examples=300, deadline=None)
@given(
    lo=st.floats(-1e15, 1e15, allow_nan=False),
    span=st.one_of(st.just(0.0), st.floats(1e-12, 1e15)),
    nbins=st.sampled_from([5, 6, 7]),
)
def test_ticks_are_matplotlibs(lo: float, span: float, nbins: int) -> None:
    from matplotlib.ticker import MaxNLocator

    hi = lo + span
    expected = MaxNLocator(nbins=nbins, steps=STEPS).tick_values(lo, hi)
    assert max_n_ticks(lo, hi, nbins=nbins, steps=STEPS) == [float(v) for v in expected]


def test_ticks_of_a_range_around_a_large_offset_are_matplotlibs() -> None:
    from matplotlib.ticker import MaxNLocator

    rng = np.random.default_rng(0)
    for _ in range(2000):
        lo = float(rng.normal() * 10.0 ** rng.integers(-12, 12))
        hi = lo + abs(float(rng.normal())) * 10.0 ** rng.integers(-14, 3)
        expected = [float(v) for v in MaxNLocator(nbins=5, steps=STEPS).tick_values(lo, hi)]
        assert max_n_ticks(lo, hi, nbins=5, steps=STEPS) == expected


@pytest.mark.parametrize(("name", "reverse"), [("RdBu_r", True), ("RdBu", False)])
def test_heatmap_colours_are_matplotlibs(name: str, reverse: bool) -> None:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize, to_hex

    cmap, norm = colormaps[name], Normalize(-1, 1)
    values = np.concatenate([np.linspace(-1.2, 1.2, 4801), [-1.0, 0.0, 1.0, 1 - 1e-12]])
    for v in values:
        assert diverging_color(float(v), -1, 1, reverse=reverse) == to_hex(cmap(norm(v)))
