"""Inline SVG figures: well-formed, escaped, drawn to the data, and refusals of bad data."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.reports import PlotSpec, Report, Section, render_html
from tabguard.reports._svg import render_svg, tick_text

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str | None) -> ElementTree.Element:
    assert svg is not None
    return ElementTree.fromstring(svg)


def test_rate_draws_one_bar_and_one_point_per_label() -> None:
    spec = PlotSpec(
        kind="rate",
        title="AGE: rate of default",
        data={
            "labels": ["18-25", "25-30", "30-40"],
            "counts": [10, 40, 20],
            "rates": [0.1, 0.3, None],
            "low": [0.0, 0.2, None],
            "high": [0.3, 0.4, None],
            "base_rate": 0.2,
            "ylabel": "rate of default",
        },
    )
    root = _parse(render_svg(spec))
    bars = [r for r in root.iter(f"{NS}rect") if r.get("fill") == "#d9d9d9"]
    assert len(bars) == 3
    # the tallest bar is the 40-row bin
    heights = [float(b.get("height", 0)) for b in bars]
    assert heights.index(max(heights)) == 1
    assert len(list(root.iter(f"{NS}circle"))) == 2  # the bin without a rate has no point
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "18-25" in texts and "rate of default" in texts


def test_text_from_data_is_escaped() -> None:
    spec = PlotSpec(
        kind="bar",
        title="<script>alert(1)</script>",
        data={"labels": ["<b>", "a&b"], "series": {"<i>s</i>": [1, 2], "t": [2, 1]}},
    )
    svg = render_svg(spec)
    assert svg is not None and "<script>" not in svg and "<b>" not in svg
    root = _parse(svg)
    assert "&lt;b&gt;" in svg and "a&amp;b" in svg
    assert {t.text for t in root.iter(f"{NS}text")} >= {"<b>", "a&b", "<i>s</i>"}


def test_symlog_histogram_ticks_at_powers_of_ten() -> None:
    spec = PlotSpec(
        kind="hist",
        title="amount",
        data={
            "edges": [0, 1, 10, 100, 1000],
            "series": {"a": [5, 1, 2, 3]},
            "xscale": "symlog",
            "linthresh": 1,
        },
    )
    texts = [t.text for t in _parse(render_svg(spec)).iter(f"{NS}text")]
    assert {"0", "1", "10", "100", "1,000"} <= set(texts)


def test_kinds_without_svg_are_left_to_png() -> None:
    assert render_svg(PlotSpec(kind="heatmap", title="h", data={})) is None
    log_axis = {"edges": [1, 2, 3], "series": {"a": [1, 2]}, "xscale": "log"}
    assert render_svg(PlotSpec(kind="hist", title="h", data=log_axis)) is None


@pytest.mark.parametrize(
    "data",
    [
        {"edges": [0, 1, 2], "series": {"a": [1, 2, 3]}},
        {"edges": [0, 1, 2]},
    ],
)
def test_malformed_data_is_refused_and_the_report_survives(data: dict[str, object]) -> None:
    bad = PlotSpec(kind="hist", title="broken", data=data)
    with pytest.raises((ValueError, KeyError)):
        render_svg(bad)
    html = render_html(
        Report(kind="t", title="t", rows=1, sections=[Section(title="s", plots=[bad])])
    )
    assert "<h2>s" in html and "<svg" not in html


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (0.25, "0.25"),
        (1500.0, "1,500"),
        (250000.0, "250k"),
        (2e9, "2G"),
        (1e-5, "1e-05"),
    ],
)
def test_tick_text(value: float, text: str) -> None:
    assert tick_text(value) == text


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 10**9), min_size=1, max_size=30),
    labels=st.data(),
)
def test_any_rate_data_gives_well_formed_svg_inside_the_frame(
    counts: list[int], labels: st.DataObject
) -> None:
    n = len(counts)
    names = labels.draw(st.lists(st.text(max_size=40), min_size=n, max_size=n))
    rates = labels.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    spec = PlotSpec(
        kind="rate", title="t", data={"labels": names, "counts": counts, "rates": rates}
    )
    root = _parse(render_svg(spec))
    width = float(root.get("width", 0))
    height = float(root.get("height", 0))
    for r in root.iter(f"{NS}rect"):
        assert 0 <= float(r.get("x", 0)) <= width and 0 <= float(r.get("y", 0)) <= height
    for c in root.iter(f"{NS}circle"):
        assert 0 <= float(c.get("cy", 0)) <= height
    assert re.fullmatch(r"[0-9.]+", root.get("height", ""))
