"""The report model shared by every audit: findings for machines, sections for people.

Computation and rendering stay apart: checks return :class:`Finding` objects and
:class:`Section` objects holding tables and :class:`PlotSpec` (data, not pictures);
:mod:`tabguard.reports._render` turns them into ``findings.json`` and ``report.html``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from tabguard._plain import jsonable as to_jsonable

Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
_INT_LIST = re.compile(r"\[(?:\s*-?\d+,)+\s*-?\d+\s*\]")


class Finding(BaseModel):
    """One result of one check.

    Attributes
    ----------
    check : str
        The check's name, e.g. ``trigger_scan``, ``integrity``, ``model_backdoor``.
    severity : {"info", "warning", "critical"}
        ``critical`` findings make the audit exit with status 1.
    message : str
        One or two sentences for people.
    features, values : list
        The features concerned and, for triggers, their values (aligned with ``features``).
    rows : list of int
        0-based positions of the data rows concerned.
    evidence : dict
        Statistics behind the finding (counts, rates, p-values, effect sizes).
    recommendation : str, optional
        What to do about it.
    """

    model_config = ConfigDict(extra="allow")

    check: str
    severity: Severity
    message: str
    features: list[str] = Field(default_factory=list)
    values: list[Any] = Field(default_factory=list)
    rows: list[int] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)
    recommendation: str | None = None

    @field_serializer("values", "evidence")
    def _plain(self, v: Any) -> Any:
        return to_jsonable(v)


class PlotSpec(BaseModel):
    """Data for one figure; :mod:`tabguard.reports._plots` draws it.

    ``kind`` selects the renderer (``hist``, ``bar``, ``line``, ``heatmap``, ``scatter`` and
    any kind registered with :func:`tabguard.reports.register_renderer`).
    """

    kind: str
    title: str
    data: dict[str, Any] = Field(default_factory=dict)
    caption: str | None = None


class Table(BaseModel):
    """A small table for the HTML report."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str | None = None

    @field_serializer("rows")
    def _plain(self, v: Any) -> Any:
        return to_jsonable(v)


class Section(BaseModel):
    """A part of the human report: text, tables and figures.

    ``check`` names the check that wrote it, so the report links each finding to its section.
    """

    title: str
    check: str | None = None
    text: list[str] = Field(default_factory=list)
    tables: list[Table] = Field(default_factory=list)
    plots: list[PlotSpec] = Field(default_factory=list)


class Report(BaseModel):
    """An audit report.

    ``to_findings_dict`` gives the ``findings.json`` payload:
    ``{"rows", "suspicious_rows", "findings": [...], "summary", "meta"}``.
    """

    kind: str
    title: str
    rows: int
    suspicious_rows: list[int] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    sections: list[Section] = Field(default_factory=list)

    def sorted_findings(self) -> list[Finding]:
        """Findings with the most severe first (stable within a severity)."""
        return sorted(self.findings, key=lambda f: SEVERITY_ORDER[f.severity])

    def counts(self) -> dict[str, int]:
        """Number of findings per severity."""
        out = {"critical": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity] += 1
        return out

    @property
    def has_critical(self) -> bool:
        """True when any finding is critical (the audit's exit status is then 1)."""
        return any(f.severity == "critical" for f in self.findings)

    def exit_code(self) -> int:
        """0 without critical findings, 1 with at least one."""
        return 1 if self.has_critical else 0

    def by_check(self, check: str) -> list[Finding]:
        """Findings of one check (exact name or substring)."""
        return [f for f in self.findings if check == f.check or check in f.check]

    def to_findings_dict(self) -> dict[str, Any]:
        """The machine-readable payload written to ``findings.json``."""
        return {
            "kind": self.kind,
            "rows": self.rows,
            "suspicious_rows": sorted(int(r) for r in self.suspicious_rows),
            "findings": [
                f.model_dump(mode="json", exclude_none=True) for f in self.sorted_findings()
            ],
            "summary": to_jsonable({**self.summary, "severity_counts": self.counts()}),
            "meta": to_jsonable(self.meta),
        }

    def write_json(self, path: str | Path) -> Path:
        """Write ``findings.json`` and return its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_findings_dict(), indent=2)
        # Keep long lists of row numbers on one line: readable, and 10x smaller on big data.
        text = _INT_LIST.sub(lambda m: re.sub(r"\s+", "", m.group(0)).replace(",", ", "), text)
        p.write_text(text, encoding="utf-8")
        return p


def now_iso() -> str:
    """Current UTC time in ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def merge_rows(findings: Sequence[Finding]) -> list[int]:
    """Sorted union of the rows of several findings."""
    out: set[int] = set()
    for f in findings:
        out.update(int(r) for r in f.rows)
    return sorted(out)
