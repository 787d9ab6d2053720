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
from tabguard.model_audit._fairness import GroupRates, group_rates


@dataclass
class PerformanceResult:
    """What the performance check measured on the reference data.

    Attributes
    ----------
    metrics : dict
        AUC, Brier score, log loss, expected calibration error, approval and positive rates,
        mean score, error standard deviation, 95th percentile of the absolute error, and the
        score threshold above which the share of rows equals the positive rate.
    threshold : float
        The decision threshold the approval rate was taken at.
    calibration : list of (float, float, int)
        Per score decile: mean predicted P(positive), observed positive rate, rows.
    error_edges : list of float
        Bin edges of the error histogram (label - score).
    error_counts : dict
        Histogram counts of the error for positive-label and negative-label rows.
    largest_errors : list of (int, int, float, float)
        The ten rows with the largest log loss: row, label, score, loss.
    """

    metrics: dict[str, float]
    threshold: float
    calibration: list[tuple[float, float, int]]
    error_edges: list[float]
    error_counts: dict[str, list[int]]
    largest_errors: list[tuple[int, int, float, float]]


def measure_performance(
    p: np.ndarray, y: np.ndarray, approve: np.ndarray, threshold: float
) -> PerformanceResult:
    """Discrimination, calibration (score deciles) and error dispersion of scores ``p``."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    both = 0 < y.sum() < len(y)
    auc = float(roc_auc_score(y, p)) if both else float("nan")
    brier = float(brier_score_loss(y, p))
    ll = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    # calibration: reliability curve on score deciles
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    calibration: list[tuple[float, float, int]] = []
    for b in range(max(len(edges) - 1, 1)):
        m = bins == b
        if m.any():
            calibration.append((float(p[m].mean()), float(y[m].mean()), int(m.sum())))
    ece = float(sum(c * abs(a - b) for a, b, c in calibration) / max(len(p), 1))
    err = y - p
    hist_edges = np.linspace(-1, 1, 41)
    counts = {
        "positive label": np.histogram(err[y == 1], bins=hist_edges)[0].tolist(),
        "negative label": np.histogram(err[y == 0], bins=hist_edges)[0].tolist(),
    }
    loss = -np.log(np.clip(np.where(y == 1, p, 1 - p), 1e-7, 1))
    worst = np.argsort(-loss)[:10]
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
        # the score above which as many rows lie as carry the positive label: a threshold
        # that gives both decisions, offered where the contract's gives one to every row
        "threshold_at_positive_rate": float(np.quantile(p, 1 - y.mean())) if len(p) else 0.5,
    }
    return PerformanceResult(
        metrics=metrics,
        threshold=threshold,
        calibration=calibration,
        error_edges=hist_edges.tolist(),
        error_counts=counts,
        largest_errors=[(int(i), int(y[i]), float(p[i]), float(loss[i])) for i in worst],
    )


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
        """Compute the metrics and curves; ``_performance_report`` words and draws them."""
        from tabguard.model_audit._performance_report import performance_report

        res = measure_performance(ctx.scores, ctx.y, ctx.approve, ctx.model.threshold)
        ctx.cache["metrics"] = res.metrics
        return performance_report(res)


@dataclass
class FairnessResult:
    """What the fairness check measured.

    Attributes
    ----------
    used_as_input : list of str
        Protected attributes that are inputs of the model (unlawful features).
    rates : list of GroupRates
        Decision and error rates by group, per protected attribute present in the data.
    declared : bool
        Whether the contract declares any protected attribute.
    """

    used_as_input: list[str]
    rates: list[GroupRates]
    declared: bool


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
        """Approval and error rates per group of every protected attribute.

        ``_fairness_report`` words them against the four-fifths rule.
        """
        from tabguard.model_audit._fairness_report import fairness_report

        o = ctx.opts(FairnessOptions)
        model = ctx.model
        contract = model.contract
        protected = contract.protected_features()
        fav = np.asarray(ctx.y == 0) if model.positive_means_deny else np.asarray(ctx.y == 1)
        res = FairnessResult(
            used_as_input=[f for f in protected if f in model.feature_names],
            rates=[
                group_rates(ctx.approve, fav, ctx.data[f], min_count=o.min_group)
                for f in protected
                if f in ctx.data.columns
            ],
            declared=bool(protected),
        )
        return fairness_report(res, o.four_fifths)
