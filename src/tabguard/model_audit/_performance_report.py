"""Wording of the performance check: the metrics line, the largest errors and the plots.

The computation (:func:`~tabguard.model_audit._checks.measure_performance`) returns a
:class:`~tabguard.model_audit._checks.PerformanceResult`; this module words and draws it.
"""

from __future__ import annotations

from tabguard.model_audit._base import ModelCheckResult
from tabguard.model_audit._checks import PerformanceResult
from tabguard.reports import PlotSpec, Section, Table


def performance_report(res: PerformanceResult) -> ModelCheckResult:
    """One section (metrics, largest errors, calibration and error plots); no finding."""
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
    return ModelCheckResult(sections=[section], summary=res.metrics)
