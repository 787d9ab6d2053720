"""Wording of the fairness check (M4): unlawful features, disparate impact, rates by group.

The computation (:class:`~tabguard.model_audit._checks.FairnessCheck`) returns a
:class:`~tabguard.model_audit._checks.FairnessResult`; this module words it against the
four-fifths rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tabguard.model_audit._base import ModelCheckResult
from tabguard.model_audit._checks import FairnessResult
from tabguard.model_audit._fairness import GroupRates
from tabguard.reports import Finding, PlotSpec, Section, Table


def fairness_report(res: FairnessResult, ratio_min: float) -> ModelCheckResult:
    """A critical finding per protected input; per attribute, a disparate-impact finding
    (warning below ``ratio_min``) and a section; the summary by attribute."""
    findings = [unlawful_feature_finding(f) for f in res.used_as_input]
    sections: list[Section] = []
    summary: dict[str, object] = {}
    for rates in res.rates:
        evidence = rates_summary(rates)
        summary[rates.feature] = evidence
        findings.append(disparate_impact_finding(rates, evidence, ratio_min))
        sections.append(rates_section(rates, ratio_min))
    if not res.declared:
        summary["skipped"] = "the contract declares no protected attribute"
    return ModelCheckResult(findings=findings, sections=sections, summary=summary)


def unlawful_feature_finding(feature: str) -> Finding:
    """A protected attribute used as a model input."""
    return Finding(
        check="unlawful_feature",
        severity="critical",
        message=(
            f"protected attribute {feature} is an input of the model; a protected "
            "attribute may be audited but never used to decide."
        ),
        features=[feature],
        recommendation="retrain without it (tabguard's transform drops protected features)",
    )


def rates_summary(rates: GroupRates) -> dict[str, Any]:
    """Ratio, difference and every group's rates (the finding's evidence and the summary)."""
    return {
        "ratio": rates.ratio,
        "difference": rates.difference,
        "groups": {
            str(g): {k: float(v) for k, v in row.items()} for g, row in rates.table.iterrows()
        },
    }


def disparate_impact_finding(
    rates: GroupRates, evidence: dict[str, Any], ratio_min: float
) -> Finding:
    """A warning when the approval-rate ratio is below ``ratio_min``, else an info."""
    f = rates.feature
    if np.isfinite(rates.ratio) and rates.ratio < ratio_min:
        approval = rates.table["approval_rate"].astype(float)
        lo, hi = str(approval.idxmin()), str(approval.idxmax())
        return Finding(
            check="disparate_impact",
            severity="warning",
            message=(
                f"approval rate ratio across {f} is {rates.ratio:.2f} (group {lo}: "
                f"{approval.min():.1%}, group {hi}: {approval.max():.1%}), below the "
                f"four-fifths rule ({ratio_min:g})."
            ),
            features=[f],
            values=[lo],
            evidence=evidence,
            recommendation="review the features that proxy the attribute",
        )
    return Finding(
        check="disparate_impact",
        severity="info",
        message=(
            f"approval rate ratio across {f} is {rates.ratio:.2f} (four-fifths rule: >= "
            f"{ratio_min:g}); difference {rates.difference:.1%}."
        ),
        features=[f],
        evidence=evidence,
    )


def rates_section(rates: GroupRates, ratio_min: float) -> Section:
    """The rates table and the approval-rate bar chart of one attribute."""
    f = rates.feature
    rows = [
        [
            str(g),
            int(r["count"]),
            float(r["approval_rate"]),
            float(r["favourable_rate"]),
            float(r["false_approval_rate"]),
            float(r["false_denial_rate"]),
        ]
        for g, r in rates.table.iterrows()
    ]
    return Section(
        title=f"Disparate impact by {f} (M4)",
        text=[
            f"Approval-rate ratio {rates.ratio:.3f} (lowest / highest group; four-fifths rule "
            f"{ratio_min:g}); difference {rates.difference:.3f}. False approval: approved "
            "although the outcome was unfavourable; false denial: denied although it was "
            "favourable."
        ],
        tables=[
            Table(
                columns=[
                    "group",
                    "rows",
                    "approval rate",
                    "favourable outcomes",
                    "false approval rate",
                    "false denial rate",
                ],
                rows=rows,
            )
        ],
        plots=[
            PlotSpec(
                kind="bar",
                title=f"Approval rate by {f}",
                data={
                    "labels": [r[0] for r in rows],
                    "series": {"approval rate": [r[2] for r in rows]},
                    "ylabel": "approval rate",
                },
            )
        ],
    )
