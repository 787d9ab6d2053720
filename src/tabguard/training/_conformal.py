"""Conformal prediction sets with MAPIE (the only module that imports MAPIE).

Split conformal classification: the trained scorer is frozen (``prefit``), MAPIE computes the
LAC conformity scores ``1 - p(true class)`` on a calibration split, and the prediction set of a
new row holds every class whose probability is at least ``1 - q`` (``q`` the conformal
quantile). The coverage that matters is the one *measured* on a further split that neither
training nor calibration saw, so that is what is reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from tabguard.training._scorer import Scorer


class _FrozenScorer(ClassifierMixin, BaseEstimator):
    """A trained :class:`Scorer` seen by MAPIE as a fitted binary classifier on matrices."""

    def __init__(self, scorer: Scorer | None = None) -> None:
        self.scorer = scorer

    def __sklearn_is_fitted__(self) -> bool:
        return self.scorer is not None

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def fit(self, X: Any, y: Any) -> _FrozenScorer:
        # prefit mode never calls fit; a refit would silently replace the trained model.
        raise RuntimeError("the scorer is already trained; use MAPIE with prefit=True")

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.scorer is None:
            raise RuntimeError("no scorer")
        p1 = self.scorer.positive_proba_matrix(np.asarray(X, dtype=float))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    ph = k / n
    den = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / den
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def conformal_evaluation(
    scorer: Scorer,
    X_calib: np.ndarray,
    y_calib: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    alpha: float = 0.1,
    random_state: int = 0,
) -> dict[str, Any]:
    """Calibrate split-conformal sets on one split and measure their coverage on another.

    Parameters
    ----------
    scorer : Scorer
        The trained model (not refitted).
    X_calib, y_calib : arrays
        Calibration split (transformed matrix, 0/1 labels).
    X_test, y_test : arrays
        Held-out split on which coverage is measured.
    alpha : float
        Target miscoverage: sets should contain the true label for ``1 - alpha`` of rows.

    Returns
    -------
    dict
        ``target_coverage``, measured ``coverage`` with a Wilson 95% interval, set-size
        shares, coverage per class and the LAC ``quantile`` (a row's set holds class k when
        ``p_k >= 1 - quantile``).
    """
    from mapie.classification import SplitConformalClassifier

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    mapie = SplitConformalClassifier(
        estimator=_FrozenScorer(scorer),
        confidence_level=1.0 - alpha,
        conformity_score="lac",
        prefit=True,
        random_state=random_state,
    )
    mapie.conformalize(X_calib, np.asarray(y_calib, dtype=int))
    _, sets = mapie.predict_set(X_test)
    sets = np.asarray(sets)[:, :, 0].astype(bool)
    y = np.asarray(y_test, dtype=int)
    covered = sets[np.arange(len(y)), y]
    size = sets.sum(axis=1)
    k = int(covered.sum())
    low, high = _wilson(k, len(y))
    quantile = _quantile(mapie)
    return {
        "method": "split conformal, LAC score (MAPIE SplitConformalClassifier, prefit)",
        "alpha": alpha,
        "target_coverage": 1.0 - alpha,
        "coverage": k / len(y) if len(y) else math.nan,
        "coverage_ci": [low, high],
        "coverage_by_class": {
            str(c): float(covered[y == c].mean()) if (y == c).any() else None for c in (0, 1)
        },
        "mean_set_size": float(size.mean()) if len(y) else math.nan,
        "share_singleton": float((size == 1).mean()) if len(y) else math.nan,
        "share_both_labels": float((size == 2).mean()) if len(y) else math.nan,
        "share_empty": float((size == 0).mean()) if len(y) else math.nan,
        "n_calibration": len(y_calib),
        "n_test": len(y),
        "quantile": quantile,
    }


def _quantile(mapie: Any) -> float | None:
    # Not public API: read defensively, the figure is informative only.
    try:
        q = mapie._mapie_classifier.conformity_score_function_.quantiles_
        return float(np.asarray(q).reshape(-1)[0])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
