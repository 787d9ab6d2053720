"""Smaller model checks: performance on the reference data and disparate impact (M4).

* ``performance`` - AUC, Brier score and log loss on the clean reference data, the calibration
  curve (predictions vs reality), the dispersion of errors and the largest errors.
* ``fairness`` - approval rates and error rates by protected attribute (fairlearn), the ratio
  of the lowest to the highest approval rate against the four-fifths rule, and protected
  attributes the model uses as inputs (unlawful features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tabguard.checks import CheckOptions, at_least, interval, option
from tabguard.model_audit._base import (
    ModelAuditContext,
    ModelCheckResult,
    NoOptions,
    register_check,
)
from tabguard.model_audit._fairness import group_rates
from tabguard.reports import Finding, PlotSpec, Section, Table


@dataclass(frozen=True)
class PerformanceOptions(NoOptions):
    """The performance check has no settings (``options={"performance": {}}``)."""

    check: ClassVar[str] = "performance"


@register_check
class PerformanceCheck:
    """Discrimination, calibration and error dispersion on the reference data."""

    name: ClassVar[str] = "performance"
    order: ClassVar[int] = 10
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = PerformanceOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Compute metrics and the calibration and error plots."""
        from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

        p, y = ctx.scores, ctx.y
        both = 0 < y.sum() < len(y)
        auc = float(roc_auc_score(y, p)) if both else float("nan")
        brier = float(brier_score_loss(y, p))
        ll = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
        # calibration: reliability curve on score deciles
        edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
        bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
        pred, obs, count = [], [], []
        for b in range(max(len(edges) - 1, 1)):
            m = bins == b
            if m.any():
                pred.append(float(p[m].mean()))
                obs.append(float(y[m].mean()))
                count.append(int(m.sum()))
        ece = float(
            sum(c * abs(a - b) for a, b, c in zip(pred, obs, count, strict=True)) / max(len(p), 1)
        )
        err = y - p
        hist_edges = np.linspace(-1, 1, 41)
        counts = {
            "positive label": np.histogram(err[y == 1], bins=hist_edges)[0].tolist(),
            "negative label": np.histogram(err[y == 0], bins=hist_edges)[0].tolist(),
        }
        loss = -np.log(np.clip(np.where(y == 1, p, 1 - p), 1e-7, 1))
        worst = np.argsort(-loss)[:10]
        approve = ctx.approve
        metrics = {
            "auc": auc,
            "brier": brier,
            "log_loss": ll,
            "expected_calibration_error": ece,
            "approval_rate": float(approve.mean()),
            "positive_rate": float(y.mean()),
            "mean_score": float(p.mean()),
            "error_std": float(err.std()),
            "error_p95_abs": float(np.quantile(np.abs(err), 0.95)),
        }
        ctx.cache["metrics"] = metrics
        section = Section(
            title="Performance on the reference data",
            text=[
                f"AUC {auc:.3f}, Brier score {brier:.4f}, log loss {ll:.4f}, expected "
                f"calibration error {ece:.4f}; approval rate {approve.mean():.1%} at threshold "
                f"{ctx.model.threshold:g}."
            ],
            tables=[
                Table(
                    columns=["row", "label", "score", "loss"],
                    rows=[[int(i), int(y[i]), float(p[i]), float(loss[i])] for i in worst],
                    caption="The largest errors (log loss).",
                )
            ],
            plots=[
                PlotSpec(
                    kind="line",
                    title="Calibration: predictions vs reality",
                    data={
                        "x": pred,
                        "series": {"observed positive rate": obs},
                        "diagonal": [0.0, max(pred + obs + [0.01])],
                        "xlabel": "mean predicted P(positive) (score deciles)",
                        "ylabel": "observed positive rate",
                    },
                ),
                PlotSpec(
                    kind="hist",
                    title="Error dispersion (label - score)",
                    data={
                        "edges": hist_edges.tolist(),
                        "series": counts,
                        "xlabel": "label - score",
                    },
                ),
            ],
        )
        return ModelCheckResult(sections=[section], summary=metrics)


@dataclass(frozen=True)
class FairnessOptions(CheckOptions):
    """Settings of the fairness check (``options={"fairness": {...}}``)."""

    check: ClassVar[str] = "fairness"

    four_fifths: float = option(
        0.8,
        "approval-rate ratio (lowest / highest group) below which the disparity is a warning",
        interval(0.0, 1.0, "right"),
    )
    min_group: int = option(
        30, "groups with fewer reference rows are left out of the ratio (too noisy)", at_least(1)
    )


@register_check
class FairnessCheck:
    """M4: disparate impact of decisions by protected attribute."""

    name: ClassVar[str] = "fairness"
    order: ClassVar[int] = 80
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = FairnessOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Approval and error rates per group of every protected attribute."""
        o = ctx.opts(FairnessOptions)
        ratio_min = o.four_fifths
        min_count = o.min_group
        model = ctx.model
        contract = model.contract
        findings: list[Finding] = []
        sections: list[Section] = []
        summary: dict[str, object] = {}
        used = [f for f in contract.protected_features() if f in model.feature_names]
        for f in used:
            findings.append(
                Finding(
                    check="unlawful_feature",
                    severity="critical",
                    message=(
                        f"protected attribute {f} is an input of the model; a protected "
                        "attribute may be audited but never used to decide."
                    ),
                    features=[f],
                    recommendation="retrain without it (tabguard's transform drops protected "
                    "features)",
                )
            )
        fav = np.asarray(ctx.y == 0) if model.positive_means_deny else np.asarray(ctx.y == 1)
        for f in contract.protected_features():
            if f not in ctx.data.columns:
                continue
            res = group_rates(ctx.approve, fav, ctx.data[f], min_count=min_count)
            table = res.table
            summary[f] = {
                "ratio": res.ratio,
                "difference": res.difference,
                "groups": {
                    str(g): {k: float(v) for k, v in row.items()} for g, row in table.iterrows()
                },
            }
            if np.isfinite(res.ratio) and res.ratio < ratio_min:
                rates = table["approval_rate"].astype(float)
                lo, hi = str(rates.idxmin()), str(rates.idxmax())
                findings.append(
                    Finding(
                        check="disparate_impact",
                        severity="warning",
                        message=(
                            f"approval rate ratio across {f} is {res.ratio:.2f} (group {lo}: "
                            f"{rates.min():.1%}, group {hi}: "
                            f"{rates.max():.1%}), below the four-fifths rule "
                            f"({ratio_min:g})."
                        ),
                        features=[f],
                        values=[lo],
                        evidence=summary[f],
                        recommendation="review the features that proxy the attribute",
                    )
                )
            else:
                findings.append(
                    Finding(
                        check="disparate_impact",
                        severity="info",
                        message=(
                            f"approval rate ratio across {f} is {res.ratio:.2f} "
                            f"(four-fifths rule: >= {ratio_min:g}); difference "
                            f"{res.difference:.1%}."
                        ),
                        features=[f],
                        evidence=summary[f],
                    )
                )
            rows = [
                [
                    str(g),
                    int(r["count"]),
                    float(r["approval_rate"]),
                    float(r["favourable_rate"]),
                    float(r["false_approval_rate"]),
                    float(r["false_denial_rate"]),
                ]
                for g, r in table.iterrows()
            ]
            sections.append(
                Section(
                    title=f"Disparate impact by {f} (M4)",
                    text=[
                        f"Approval-rate ratio {res.ratio:.3f} (lowest / highest group; "
                        f"four-fifths rule {ratio_min:g}); difference {res.difference:.3f}. "
                        "False approval: approved although the outcome was unfavourable; false "
                        "denial: denied although it was favourable."
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
            )
        if not contract.protected_features():
            summary["skipped"] = "the contract declares no protected attribute"
        return ModelCheckResult(findings=findings, sections=sections, summary=summary)
