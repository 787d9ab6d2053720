"""Findings and reports: the machine-readable ``findings.json`` and the human ``report.html``.

Every audit (data, model) produces a :class:`Report`. Checks return :class:`Finding` objects
and :class:`Section` objects holding tables and :class:`PlotSpec` data; rendering is separate.
"""

from tabguard.reports._model import (
    SEVERITY_ORDER,
    Finding,
    PlotSpec,
    Report,
    Section,
    Severity,
    Table,
    merge_rows,
    now_iso,
    to_jsonable,
)
from tabguard.reports._plots import register_renderer, render_png
from tabguard.reports._render import format_number, render_html, write_report

__all__ = [
    "SEVERITY_ORDER",
    "Finding",
    "PlotSpec",
    "Report",
    "Section",
    "Severity",
    "Table",
    "format_number",
    "merge_rows",
    "now_iso",
    "register_renderer",
    "render_html",
    "render_png",
    "to_jsonable",
    "write_report",
]
