"""Rendering reports: every plot kind, escaping, navigation, readable numbers."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tabguard.reports import (
    Finding,
    PlotSpec,
    Report,
    Section,
    Table,
    format_number,
    register_renderer,
    render_html,
    render_png,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ALL_KINDS = [
    PlotSpec(
        kind="hist",
        title="hist",
        data={"edges": [0, 1, 2, 3], "series": {"a": [1, 2, 3], "b": [3, 2, 1]}, "density": True},
    ),
    PlotSpec(
        kind="hist",
        title="hist on a log scale",
        data={
            "edges": [0, 1, 10, 100, 1000],
            "series": {"a": [5, 1, 2, 3]},
            "xscale": "symlog",
            "linthresh": 1,
        },
    ),
    PlotSpec(
        kind="bar",
        title="bar with asymmetric errors",
        data={
            "labels": ["x", "y"],
            "series": {"s": [0.5, 0.7]},
            "errors": {"s": [[0.1, 0.05], [0.05, 0.1]]},
            "hline": 0.56,
        },
    ),
    PlotSpec(kind="barh", title="barh", data={"labels": ["f1", "f2"], "values": [0.9, 0.6]}),
    PlotSpec(
        kind="line",
        title="line",
        data={
            "x": [1, 2, 3],
            "series": {"s": [1, 4, 9]},
            "band": {"low": [0, 3, 8], "high": [2, 5, 10], "label": "95%"},
        },
    ),
    PlotSpec(kind="scatter", title="scatter", data={"x": [1, 2, 3], "y": [3, 1, 2]}),
    PlotSpec(
        kind="heatmap",
        title="heatmap",
        data={"matrix": [[1, 0.5], [0.5, 1]], "labels": ["a", "b"], "annotate": True},
    ),
    PlotSpec(
        kind="rate",
        title="rate",
        data={
            "labels": ["[0, 10)", "[10, 20]"],
            "counts": [100, 50],
            "rates": [0.2, 0.4],
            "low": [0.13, 0.27],
            "high": [0.29, 0.54],
            "base_rate": 0.27,
        },
    ),
]


@pytest.mark.parametrize("spec", ALL_KINDS, ids=lambda s: s.title)
def test_every_plot_kind_draws_a_png(spec: PlotSpec) -> None:
    assert render_png(spec).startswith(PNG_MAGIC)


def test_unknown_kind_is_a_clear_error_and_does_not_lose_the_report() -> None:
    bad = PlotSpec(kind="pie3d", title="nope")
    with pytest.raises(KeyError, match="no renderer for plot kind 'pie3d'"):
        render_png(bad)
    html = render_html(
        Report(kind="t", title="t", rows=1, sections=[Section(title="s", plots=[bad])])
    )
    assert "<h2>s" in html and "<img" not in html


def test_registered_renderer_is_used() -> None:
    @register_renderer("test_dot")
    def _dot(ax: object, d: dict[str, object]) -> None:
        ax.plot([0], [d["y"]], "o")  # type: ignore[attr-defined]

    assert render_png(PlotSpec(kind="test_dot", title="dot", data={"y": 1})).startswith(PNG_MAGIC)


def _report() -> Report:
    long_rows = [[i, i * 1.5] for i in range(40)]
    return Report(
        kind="data_audit",
        title="Audit <of> 'things'",
        rows=1_234_567,
        suspicious_rows=[3, 4],
        findings=[
            Finding(
                check="descriptive",
                severity="info",
                message="plain info",
                evidence={"p": 1.2e-30, "nested": {"auc": 0.71234}},
            ),
            Finding(
                check="bias",
                severity="critical",
                message="evil <script>alert('x')</script> & more",
                features=["gender<b>"],
                values=["<i>v</i>"],
                rows=[1, 2, 3],
                recommendation="do <this>",
            ),
            Finding(check="orphan", severity="warning", message="no section of its own"),
        ],
        sections=[
            Section(
                title="Descriptive analysis (D2)",
                check="descriptive",
                text=["Some <text>"],
                tables=[
                    Table(columns=["n", "x"], rows=long_rows, caption="long"),
                    Table(columns=["<col>"], rows=[["<cell>"]]),
                ],
                plots=ALL_KINDS,
            ),
            Section(title="Disparate impact (D4)", check="bias"),
            Section(title="Disparate impact (D4)"),  # same title: a distinct anchor
        ],
    )


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(_report())


def test_html_contains_every_image(html: str) -> None:
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    drawings = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(images) + len(drawings) == len(ALL_KINDS)
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    # the built-in kinds are inline SVG, well-formed XML titled with the plot's title
    assert len(drawings) == len(ALL_KINDS) and not images
    for d in drawings:
        assert ElementTree.fromstring(d).find("{http://www.w3.org/2000/svg}title") is not None


def test_text_from_data_is_escaped(html: str) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
    assert "gender&lt;b&gt;=&lt;i&gt;v&lt;/i&gt;" in html
    assert "do &lt;this&gt;" in html and "Some &lt;text&gt;" in html
    assert "&lt;col&gt;" in html and "&lt;cell&gt;" in html
    assert "<title>Audit &lt;of&gt; &#39;things&#39;</title>" in html


def test_navigation_and_finding_links(html: str) -> None:
    # A table of contents with an anchor per section; duplicate titles stay distinct.
    assert 'href="#descriptive-analysis-d2"' in html and 'id="descriptive-analysis-d2"' in html
    assert 'id="disparate-impact-d4"' in html and 'id="disparate-impact-d4-2"' in html
    # Findings link to the section of the check that produced them.
    assert '<a href="#disparate-impact-d4"><code>bias</code></a>' in html
    assert '<a href="#descriptive-analysis-d2"><code>descriptive</code></a>' in html
    assert "<td><code>orphan</code></td>" in html
    # The critical finding comes first.
    assert html.index("evil &lt;script") < html.index("plain info")


def test_long_tables_collapse_and_numbers_read_well(html: str) -> None:
    assert "show all 40 rows" in html
    assert "1,234,567" in html  # rows card
    assert "auc: 0.7123" in html and "1.2e-30" in html
    assert '<td class="num">58.5</td>' in html


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (1234567, {}, "1,234,567"),
        (9999, {}, "9,999"),
        (999, {}, "999"),
        (3.0, {}, "3"),
        (0.123456, {}, "0.1235"),
        (0.0000123, {}, "1.2e-05"),
        (12345.678, {}, "12,346"),
        (250000.0, {"compact": True}, "250k"),
        (1_500_000, {"compact": True}, "1.5M"),
        (float("nan"), {}, "–"),
        (None, {}, "–"),
        (float("inf"), {}, "∞"),
        (True, {}, "True"),
        ("text", {}, "text"),
    ],
)
def test_format_number(value: object, kwargs: dict[str, bool], text: str) -> None:
    assert format_number(value, **kwargs) == text


def test_write_report_writes_json_and_html(tmp_path: Path) -> None:
    paths = write_report(_report(), tmp_path / "out")
    payload = json.loads(paths["findings"].read_text())
    assert payload["rows"] == 1_234_567 and payload["suspicious_rows"] == [3, 4]
    assert payload["findings"][0]["severity"] == "critical"
    assert "<script>" not in paths["report"].read_text()
