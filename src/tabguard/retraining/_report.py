"""Wording and rendering of the retrain report (``retrain.json``, ``retrain.html``)."""

from __future__ import annotations

import json
import math
from typing import Any

from tabguard.reports import Finding, Report, Section, Table, now_iso, render_html, to_jsonable


def _ci(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None or not math.isfinite(float(m["value"])):
        return "-"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if lo is None or not math.isfinite(float(lo)):
        return f"{m['value']:.4f}"
    return f"{m['value']:.4f} [{lo:.4f}, {hi:.4f}]"


def _pct(v: Any) -> str:
    return "-" if v is None or not math.isfinite(float(v)) else f"{float(v):.1%}"


def build_report(summary: dict[str, Any]) -> Report:
    """The human report of a retrain summary (see :meth:`RetrainResult.summary`)."""
    findings: list[Finding] = []
    for gate in summary["gates"]:
        for line in gate["blocking"]:
            findings.append(
                Finding(check=f"{gate['gate']}_gate", severity="critical", message=line)
            )
        for item in gate["resolved"]:
            text = item.get("message", "")
            if item.get("kept"):
                text = (
                    f"kept {item['rows']} rows: the variants of one probed application "
                    f"({item['application']}) with its true outcome, not a trigger: {text}"
                )
            elif "rows_by_source" in item:
                by = ", ".join(f"{k} {v}" for k, v in item["rows_by_source"].items())
                text = f"quarantined {item['rows']} rows ({by}): {text}"
            elif item.get("inherited"):
                text = f"inherited from the champion: {text}"
            elif item.get("from_parent_data"):
                text = (
                    f"in a cell of {item['from_parent_data']} rows from the parent's data, not "
                    f"planted through the loop: {text}"
                )
            elif item.get("learnt_from_exploits"):
                text = (
                    f"learnt from {item['learnt_from_exploits']} exploit attempts (the probed "
                    f"region now leads to denial): {text}"
                )
            findings.append(Finding(check=f"{gate['gate']}_gate", severity="warning", message=text))
    counts = summary["counts"]
    sections = [
        Section(
            title="What the retrain learnt from",
            text=[
                f"Parent {summary['parent']['version']} (manifest "
                f"{summary['parent']['digest'][:16]}…); outcomes matured as of "
                f"{summary['as_of']}.",
                *summary.get("notes", []),
            ],
            tables=[
                Table(
                    columns=["rows", "count"],
                    rows=[[k, v] for k, v in counts.items()],
                ),
                Table(
                    columns=["part", "sha256"],
                    rows=[[k, v] for k, v in summary["hashes"].items()],
                ),
            ],
        ),
        Section(
            title="Gates",
            tables=[
                Table(
                    columns=["gate", "verdict", "blocking", "resolved", "detail"],
                    rows=[
                        [
                            g["gate"],
                            "passed" if g["passed"] else "BLOCKED",
                            len(g["blocking"]),
                            len(g["resolved"]),
                            json.dumps(to_jsonable(g["detail"]))[:400],
                        ]
                        for g in summary["gates"]
                    ],
                )
            ],
        ),
    ]
    comp = summary.get("comparison") or {}
    hold = comp.get("holdout") or {}
    if hold.get("rows"):
        sections.append(
            Section(
                title="Champion / challenger on the recent holdout",
                text=[
                    f"{hold['rows']} most recent matured requests ({hold['positives']} positive), "
                    "never trained on; 95% bootstrap intervals, the difference paired."
                ],
                tables=[
                    Table(
                        columns=["metric", "champion", "challenger"],
                        rows=[
                            [
                                "AUC",
                                _ci(hold["champion"]["auc"]),
                                _ci(hold["challenger"]["auc"]),
                            ],
                            ["AUC difference", "", _ci(hold["auc_difference"])],
                            [
                                "Brier",
                                f"{hold['champion']['brier']:.4f}",
                                f"{hold['challenger']['brier']:.4f}",
                            ],
                        ],
                    ),
                    Table(
                        columns=[
                            "segment",
                            "value",
                            "n",
                            "approve (champion → challenger)",
                            "review",
                            "deny",
                        ],
                        rows=[
                            [
                                r["segment"],
                                r["value"],
                                r["n"],
                                f"{_pct(r['champion_approve'])} → {_pct(r['challenger_approve'])}",
                                f"{_pct(r['champion_review'])} → {_pct(r['challenger_review'])}",
                                f"{_pct(r['champion_deny'])} → {_pct(r['challenger_deny'])}",
                            ]
                            for r in hold["decision_rates"]
                        ],
                    ),
                ],
            )
        )
    if summary.get("shadow"):
        sections.append(
            Section(
                title="The model in shadow, on live traffic",
                text=[
                    "Matured requests scored by the live model and by the model in shadow at "
                    "the time they arrived (both scores logged, neither model had seen these "
                    "outcomes); 95% paired bootstrap intervals."
                ],
                tables=[
                    Table(
                        columns=[
                            "shadow version",
                            "rows",
                            "live AUC",
                            "shadow AUC",
                            "difference",
                            "same decision",
                        ],
                        rows=[
                            [
                                r["version"],
                                r["rows"],
                                _ci(r["live_auc"]),
                                _ci(r["shadow_auc"]),
                                _ci(r["auc_difference"]),
                                _pct(r["decision_agreement"]),
                            ]
                            for r in summary["shadow"]
                        ],
                    )
                ],
            )
        )
    exp = comp.get("exploits") or {}
    if exp.get("all", {}).get("n"):
        rows = [
            [
                k,
                v["n"],
                _pct(v["before"]),
                _pct(v["after"]),
                v["n_unfavourable_label"],
                _pct(v["before_unfavourable"]),
                _pct(v["after_unfavourable"]),
            ]
            for k, v in exp.items()
            if k != "previously_successful"
        ]
        prev = exp["previously_successful"]
        sections.append(
            Section(
                title="Known exploits: attack success before and after",
                text=[
                    "Attack success = the exploit input gets the favourable decision. The "
                    "challenger trained on these rows: this says it learnt them, not how it "
                    "generalises (the holdout says that).",
                    f"Of the {prev['n']} exploit inputs the champion approved, "
                    f"{_pct(prev['no_longer'])} no longer are.",
                ],
                tables=[
                    Table(
                        columns=[
                            "kind",
                            "n",
                            "success before",
                            "after",
                            "n with unfavourable label",
                            "before",
                            "after",
                        ],
                        rows=rows,
                    )
                ],
            )
        )
    status = summary["status"]
    return Report(
        kind="retrain",
        title=f"Retrain of {summary['parent']['version']}: {status}",
        rows=int(counts.get("base", 0)) + int(counts.get("logged", 0)),
        findings=findings,
        summary=summary,
        meta={"created": now_iso(), "status": status},
        sections=sections,
    )


def render(summary: dict[str, Any]) -> dict[str, str]:
    """``{"retrain.json": ..., "retrain.html": ...}``."""
    report = build_report(summary)
    return {
        "retrain.json": json.dumps(to_jsonable(summary), indent=2, sort_keys=True) + "\n",
        "retrain.html": render_html(report),
    }
