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
    assert render_svg(PlotSpec(kind="beeswarm", title="b", data={})) is None
    viridis = {"matrix": [[1]], "labels": ["a"], "cmap": "viridis"}
    assert render_svg(PlotSpec(kind="heatmap", title="h", data=viridis)) is None
    per_dot = {"x": [1, 2], "y": [1, 2], "color": [0.1, 0.9]}
    assert render_svg(PlotSpec(kind="scatter", title="s", data=per_dot)) is None
    log_axis = {"edges": [1, 2, 3], "series": {"a": [1, 2]}, "xscale": "log"}
    assert render_svg(PlotSpec(kind="hist", title="h", data=log_axis)) is None


def test_line_has_gaps_dots_band_and_reference_lines() -> None:
    spec = PlotSpec(
        kind="line",
        title="Partial dependence: income",
        data={
            "x": [1, 10, 100, 1000, 10000],
            "series": {"average score": [0.1, 0.2, None, 0.3, 0.25], "other": [0.2] * 5},
            "band": {"low": [0.0] * 5, "high": [0.4] * 5, "label": "95%"},
            "hline": 0.2,
            "vlines": [50.0],
            "logx": True,
            "xlabel": "income",
        },
    )
    root = _parse(render_svg(spec))
    paths = [p for p in root.iter(f"{NS}path") if p.get("fill") == "none"]
    # the missing value splits the first series in two; the second is one line
    assert len(paths) == 3
    assert len(list(root.iter(f"{NS}circle"))) == 4 + 5  # 5 points or fewer: a dot each
    dotted = [x for x in root.iter(f"{NS}line") if x.get("stroke-dasharray") == "1 3"]
    dashed = [x for x in root.iter(f"{NS}line") if x.get("stroke-dasharray") == "4 3"]
    assert len(dotted) == 1 and len(dashed) == 1  # the neutral value and the average
    texts = {t.text for t in root.iter(f"{NS}text")}
    assert {"1", "10", "100", "1,000", "10k", "95%", "other", "income"} <= texts


def test_line_legend_avoids_the_lines() -> None:
    rising = {"x": [0, 1, 2, 3], "series": {"a": [0, 1, 2, 3], "b": [0, 0.5, 1, 1.5]}}
    root = _parse(render_svg(PlotSpec(kind="line", title="t", data=rising)))
    box = next(r for r in root.iter(f"{NS}rect") if r.get("fill") == "#fff")
    assert float(box.get("x", 0)) < 200  # top left: the lines end top right


def test_scatter_draws_every_finite_point_translucent() -> None:
    spec = PlotSpec(
        kind="scatter",
        title="Candidate patterns",
        data={"x": [0.1, 0.5, 1.0, float("nan")], "y": [1, 5, 300, 2], "alpha": 0.7},
    )
    root = _parse(render_svg(spec))
    group = next(root.iter(f"{NS}g"))
    assert group.get("fill-opacity") == "0.7"
    assert len(list(group.iter(f"{NS}circle"))) == 3


def test_heatmap_colours_labels_and_values() -> None:
    spec = PlotSpec(
        kind="heatmap",
        title="Spearman correlation",
        data={
            "matrix": [[1.0, -1.0, 0.0], [-1.0, 1.0, float("nan")], [0.0, 0.3, 1.0]],
            "labels": ["a", "b", "<c>"],
            "annotate": True,
        },
    )
    root = _parse(render_svg(spec))
    cells = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert len(cells) == 8  # the missing value is left blank
    fills = {r.find(f"{NS}title").text: r.get("fill") for r in cells}  # type: ignore[union-attr]
    assert fills["a × a: 1"] == "#67001f" and fills["a × b: -1"] == "#053061"
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert texts.count("1.00") == 3 and "0.30" in texts and texts.count("<c>") == 2


@settings(max_examples=40, deadline=None)
@given(
    ys=st.lists(
        st.one_of(st.none(), st.floats(-1e12, 1e12, allow_nan=False)), min_size=1, max_size=60
    ),
    log=st.booleans(),
)
def test_any_line_data_gives_well_formed_svg_inside_the_frame(
    ys: list[float | None], log: bool
) -> None:
    xs = [float(i + 1) for i in range(len(ys))]
    spec = PlotSpec(kind="line", title="t", data={"x": xs, "series": {"s": ys}, "logx": log})
    root = _parse(render_svg(spec))
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    for c in root.iter(f"{NS}circle"):
        assert 0 <= float(c.get("cx", 0)) <= width and 0 <= float(c.get("cy", 0)) <= height


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
