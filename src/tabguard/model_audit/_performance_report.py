"""Wording of the performance check: the metrics line, the largest errors and the plots.

The computation (:func:`~tabguard.model_audit._checks.measure_performance`) returns a
:class:`~tabguard.model_audit._checks.PerformanceResult`; this module words and draws it.
"""

from __future__ import annotations

from tabguard.model_audit._base import ModelCheckResult
from tabguard.model_audit._checks import PerformanceResult
from tabguard.reports import Finding, PlotSpec, Section, Table

#: A decision given to at least this share of the reference rows leaves the checks that compare
#: decisions (the backdoor probe, gameability, disparate impact) almost nothing to compare.
_ONE_DECISION_SHARE = 0.995
#: So does one given to at least this share where the other decision reaches under a tenth of
#: the rows whose label calls for it (fresh20: readmissions at 25.7 %, 99.2 % approved at 0.5).
_MOST_DECISIONS_SHARE = 0.99
_LABEL_SHARE_REACHED = 0.1


def performance_report(res: PerformanceResult) -> ModelCheckResult:
    """One section (metrics, largest errors, calibration and error plots), and a warning
    where the contract's threshold gives (almost) every reference row the same decision."""
    m = res.metrics
    pred = [c[0] for c in res.calibration]
    obs = [c[1] for c in res.calibration]
    section = Section(
        title="Performance on the reference data",
        text=[
            f"AUC {m['auc']:.3f}, Brier score {m['brier']:.4f}, log loss {m['log_loss']:.4f}, "
            f"expected calibration error {m['expected_calibration_error']:.4f}; approval rate "
            f"{m['approval_rate']:.1%} at threshold {res.threshold:g}."
        ],
        tables=[
            Table(
                columns=["row", "label", "score", "loss"],
                rows=[list(r) for r in res.largest_errors],
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
                    "edges": res.error_edges,
                    "series": res.error_counts,
                    "xlabel": "label - score",
                },
            ),
        ],
    )
    return ModelCheckResult(sections=[section], summary=res.metrics, findings=_one_decision(res))


def _one_decision(res: PerformanceResult) -> list[Finding]:
    """A warning when one decision covers ``_ONE_DECISION_SHARE`` of the rows or more, or
    ``_MOST_DECISIONS_SHARE`` while the other reaches under ``_LABEL_SHARE_REACHED`` of the
    share of rows whose label calls for it."""
    m = res.metrics
    rate = m["approval_rate"]
    other = min(rate, 1 - rate)
    # the share of rows whose label calls for the rarer decision (approval: label 0)
    called = m["positive_rate"] if rate >= 0.5 else 1 - m["positive_rate"]
    few = other <= 1 - _MOST_DECISIONS_SHARE and other < _LABEL_SHARE_REACHED * called
    if other > 1 - _ONE_DECISION_SHARE and not few:
        return []
    which = "approves" if rate >= 0.5 else "denies"
    suggested = m["threshold_at_positive_rate"]
    return [
        Finding(
            check="performance",
            severity="warning",
            message=(
                f"decision.threshold {res.threshold:g} {which} {max(rate, 1 - rate):.1%} of "
                f"the reference rows (mean score {m['mean_score']:.3f}, positive "
                f"rate {m['positive_rate']:.1%}): the checks that compare decisions (backdoor "
                "probe, gameability, disparate impact) have almost nothing to compare"
            ),
            evidence={
                "threshold": res.threshold,
                "approval_rate": rate,
                "positive_rate": m["positive_rate"],
                "threshold_at_positive_rate": suggested,
            },
            recommendation=(
                "audit again at the threshold of your decision policy (`--threshold`; "
                "`decision.threshold` in the contract before training): "
                f"{suggested:.4g} gives the positive decision to as many rows as carry the "
                f"positive label ({m['positive_rate']:.1%})"
            ),
        )
    ]
