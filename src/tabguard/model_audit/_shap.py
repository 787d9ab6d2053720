"""The one module that talks to SHAP.

:func:`shap_values` returns one matrix of SHAP values (rows × model columns) for the model's
score, whatever the model: the exact TreeExplainer when the native model is a tree ensemble
SHAP supports on the same columns, else a permutation explainer on the model's score function
with a small background sample (slower, so the caller passes few rows).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tabguard.model_audit._model import AuditedModel

log = logging.getLogger(__name__)


@dataclass
class ShapResult:
    """SHAP values of some rows.

    Attributes
    ----------
    values : ndarray of shape (n_rows, n_features)
        Contributions to the model output, in ``output`` units.
    X : ndarray of shape (n_rows, n_features)
        The explained rows (model matrix).
    output : str
        ``log-odds`` (tree explainer on boosted trees) or ``probability``.
    method : str
        ``tree`` or ``permutation``.
    """

    values: np.ndarray
    X: np.ndarray
    output: str
    method: str


def shap_values(
    model: AuditedModel,
    X: np.ndarray,
    background: np.ndarray,
    *,
    random_state: int = 0,
) -> ShapResult:
    """SHAP values of rows ``X`` of the model matrix.

    Parameters
    ----------
    model : AuditedModel
    X : ndarray
        Rows to explain (keep it to a few hundred).
    background : ndarray
        Reference rows for the permutation explainer (50-100 are enough).
    random_state : int

    Returns
    -------
    ShapResult
    """
    import shap

    native = getattr(model.matrix, "native", None)
    if native is not None and model.trees is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                explainer = shap.TreeExplainer(native)
                vals = explainer.shap_values(X)
            arr = _positive_class(np.asarray(vals) if not isinstance(vals, list) else vals)
            if arr.shape == X.shape:
                # Forests explain the probability, boosting models their log-odds margin.
                output = "probability" if model.trees.source == "sklearn" else "log-odds"
                return ShapResult(arr, X, output, "tree")
        except Exception as exc:  # SHAP lacks support for some splits (e.g. categories)
            log.info("TreeExplainer unavailable (%s); using the permutation explainer", exc)
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.explainers.Permutation(
        model.predict_matrix, masker, feature_names=model.feature_names, seed=random_state
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expl = explainer(X, max_evals=2 * X.shape[1] + 1, silent=True)
    return ShapResult(np.asarray(expl.values, dtype=float), X, "probability", "permutation")


def _positive_class(vals: Any) -> np.ndarray:
    if isinstance(vals, list):  # older SHAP: one matrix per class
        return np.asarray(vals[-1], dtype=float)
    arr = np.asarray(vals, dtype=float)
    if arr.ndim == 3:  # (rows, features, classes)
        return arr[:, :, -1]
    return arr
