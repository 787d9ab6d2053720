"""Render a :class:`~tabguard.reports.Report` to ``findings.json`` and ``report.html``.

The HTML report is one self-contained file (figures inlined as SVG or PNG, no scripts, no
external resources): a summary, a table of contents, the findings (each linked to the section of the
check that produced it) and the sections with their tables and figures. Every text coming from
data or checks is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from tabguard import __version__
from tabguard.reports._model import Report, Section, to_jsonable
from tabguard.reports._plots import render_base64
from tabguard.reports._svg import render_svg

log = logging.getLogger(__name__)

_LONG_TABLE = 25  # tables with more rows are collapsed (the first rows stay visible)
_PREVIEW_ROWS = 10
_MAX_LIST = 12


@dataclass
class _Image:
    title: str
    png: str
    caption: str | None
    svg: Markup | None = None


@dataclass
class _Cell:
    text: str
    numeric: bool = False


@dataclass
class _Table:
    columns: list[str]
    caption: str | None
    rows: list[list[_Cell]]
    collapsed: bool = False
    preview: list[list[_Cell]] = field(default_factory=list)


@dataclass
class _SectionView:
    title: str
    anchor: str
    text: list[str]
    tables: list[_Table]
    images: list[_Image]
    counts: dict[str, int] = field(default_factory=dict)


def format_number(v: Any, *, compact: bool = False, digits: int = 4) -> str:
    """Readable text of a number.

    Parameters
    ----------
    v : number or None
    compact : bool
        Use ``k``/``M``/``G`` suffixes (axis and bin labels) instead of thousands separators.
    digits : int
        Significant digits of non-integer values.

    Returns
    -------
    str
        ``"–"`` for None/NaN; integers with thousands separators from 1,000 up
        (``1,000,000``); small p-values in scientific notation (``3.2e-12``).

    Examples
    --------
    >>> format_number(1234567), format_number(0.000012), format_number(0.21342)
    ('1,234,567', '1.2e-05', '0.2134')
    >>> format_number(250000.0, compact=True)
    '250k'
    """
    if isinstance(v, float | np.floating) and math.isinf(v):
        return "∞" if v > 0 else "-∞"
    v = to_jsonable(v)
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    a = abs(v)
    if compact and a >= 1e4:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= scale:
                return f"{v / scale:.{3}g}{suffix}"
    if isinstance(v, int) or (a < 1e15 and float(v).is_integer()):
        iv = int(v)
        return f"{iv:,}" if abs(iv) >= 1_000 else str(iv)
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 1e-3 or a == 0:
        return f"{v:.{digits}g}"
    return f"{v:.2g}"


def _cell(v: Any) -> _Cell:
    v = to_jsonable(v)
    if isinstance(v, int | float) and not isinstance(v, bool):
        return _Cell(format_number(v), numeric=True)
    if v is None:
        return _Cell("–")
    if isinstance(v, list):
        shown = ", ".join(_cell(x).text for x in v[:_MAX_LIST])
        more = f" … ({len(v)} items)" if len(v) > _MAX_LIST else ""
        return _Cell(f"[{shown}]{more}")
    if isinstance(v, dict):
        return _Cell("; ".join(f"{k}: {_cell(x).text}" for k, x in v.items()))
    return _Cell(str(v))


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _section_of_check(sections: list[Section], anchors: list[str]) -> dict[str, str]:
    """Anchor of the first section of each check (declared ``check``, else a title match)."""
    out: dict[str, str] = {}
    for s, a in zip(sections, anchors, strict=True):
        if s.check and s.check not in out:
            out[s.check] = a
    return out


def _title_match(check: str, sections: list[Section], anchors: list[str]) -> str | None:
    words = check.replace("_", " ").lower()
    for s, a in zip(sections, anchors, strict=True):
        if words in s.title.lower():
            return a
    return None


def _table(t: Any) -> _Table:
    rows = [[_cell(v) for v in r] for r in t.rows]
    collapsed = len(rows) > _LONG_TABLE
    return _Table(
        columns=list(t.columns),
        caption=t.caption,
        rows=rows,
        collapsed=collapsed,
        preview=rows[:_PREVIEW_ROWS] if collapsed else [],
    )


def render_html(report: Report) -> str:
    """Return the HTML report as a string (figures inlined as SVG or PNG)."""
    env = Environment(
        loader=PackageLoader("tabguard.reports", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    used: set[str] = {"findings", "top", "summary"}
    anchors = [_slug(s.title, used) for s in report.sections]
    by_check = _section_of_check(report.sections, anchors)
    sections: list[_SectionView] = []
    for s, anchor in zip(report.sections, anchors, strict=True):
        images = []
        for p in s.plots:
            try:
                svg = render_svg(p)  # escapes every text it draws
                if svg is not None:
                    images.append(_Image(p.title, "", p.caption, Markup(svg)))  # noqa: S704
                else:
                    images.append(_Image(p.title, render_base64(p), p.caption))
            except Exception as exc:  # a broken figure must not lose the whole report
                log.warning("could not draw %r: %s", p.title, exc)
        sections.append(
            _SectionView(s.title, anchor, s.text, [_table(t) for t in s.tables], images)
        )
    findings = []
    by_anchor = {sec.anchor: sec for sec in sections}
    for f in report.sorted_findings():
        d = f.model_dump(mode="json")
        d["evidence"] = {k: _cell(v).text for k, v in d.get("evidence", {}).items()}
        d["values"] = [_cell(v).text for v in d.get("values", [])]
        target = by_check.get(f.check) or _title_match(f.check, report.sections, anchors)
        d["anchor"] = target
        d["n_rows"] = format_number(len(f.rows))
        findings.append(d)
        if target is not None:
            counts = by_anchor[target].counts
            counts[f.severity] = counts.get(f.severity, 0) + 1
    meta_items = [
        (k, format_number(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
        for k, v in report.meta.items()
        if isinstance(v, str | int | float)
    ]
    return env.get_template("report.html").render(
        report=report,
        findings=findings,
        sections=sections,
        counts=report.counts(),
        meta_items=meta_items,
        n_rows=format_number(report.rows),
        n_suspicious=format_number(len(report.suspicious_rows)),
        version=__version__,
    )


def write_report(report: Report, out_dir: str | Path) -> dict[str, Path]:
    """Write ``findings.json`` and ``report.html`` into ``out_dir``.

    Returns
    -------
    dict
        ``{"findings": path, "report": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"findings": report.write_json(out / "findings.json"), "report": out / "report.html"}
    paths["report"].write_text(render_html(report), encoding="utf-8")
    return paths
