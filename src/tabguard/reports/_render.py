"""Render a :class:`~tabguard.reports.Report` to ``findings.json`` and ``report.html``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from tabguard import __version__
from tabguard.reports._model import Report, to_jsonable
from tabguard.reports._plots import render_base64

log = logging.getLogger(__name__)


@dataclass
class _Image:
    title: str
    png: str
    caption: str | None


def _fmt(v: Any) -> Any:
    v = to_jsonable(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 12:
        return f"{v[:12]} … ({len(v)} items)"
    return v


def render_html(report: Report) -> str:
    """Return the HTML report as a string (figures inlined as PNG)."""
    env = Environment(
        loader=PackageLoader("tabguard.reports", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    sections = []
    for s in report.sections:
        images = []
        for p in s.plots:
            try:
                images.append(_Image(p.title, render_base64(p), p.caption))
            except Exception as exc:  # a broken figure must not lose the whole report
                log.warning("could not draw %r: %s", p.title, exc)
        tables = [
            {
                "columns": t.columns,
                "caption": t.caption,
                "rows": [[_fmt(v) for v in r] for r in t.rows],
            }
            for t in s.tables
        ]
        sections.append({"title": s.title, "text": s.text, "tables": tables, "images": images})
    findings = []
    for f in report.sorted_findings():
        d = f.model_dump(mode="json")
        d["evidence"] = {k: _fmt(v) for k, v in d.get("evidence", {}).items()}
        findings.append(d)
    meta_items = [(k, v) for k, v in report.meta.items() if isinstance(v, str | int | float)]
    return env.get_template("report.html").render(
        report=report,
        findings=findings,
        sections=sections,
        counts=report.counts(),
        meta_items=meta_items,
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
