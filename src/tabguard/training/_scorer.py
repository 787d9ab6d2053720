"""A trained model together with the contract transform it was trained behind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from tabguard.contract import FeatureTransform

ModelKind = Literal["lightgbm", "random_forest", "logistic"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)

# Below this many rows LightGBM's thread pool costs more than it saves (one request = one row).
_SINGLE_THREAD_ROWS = 512


class Scorer:
    """Score raw records or transformed matrices with one trained model.

    Every path into the model goes through :attr:`transform` (the contract transform with the
    options saved beside the model), so training and serving see identical matrices.

    Parameters
    ----------
    name : str
        ``"main"`` or ``"fallback"``.
    kind : {"lightgbm", "random_forest", "logistic"}
    native : object
        The estimator: a ``lightgbm.Booster`` or a fitted scikit-learn classifier/pipeline
        trained on 0/1 labels (1 = the contract's positive class).
    transform : FeatureTransform
        The transform whose matrix the estimator was trained on.
    params : mapping, optional
        Resolved training parameters (recorded in ``model.json``).

    Attributes
    ----------
    feature_names : list of str
        Columns of the model matrix, in order.
    Notes
    -----
    :meth:`predict_proba` returns both columns like any scikit-learn classifier; the internal
    fast paths use :meth:`positive_proba` (raw rows) and :meth:`positive_proba_matrix`
    (transformed matrix), which return P(positive) as one column.
    """

    @property
    def classes_(self) -> np.ndarray:
        """``[0, 1]``, the columns of :meth:`predict_proba` (1: the contract's positive label)."""
        return np.array([0, 1])

    def __init__(
        self,
        name: str,
        kind: str,
        native: Any,
        transform: FeatureTransform,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if kind not in MODEL_KINDS:
            raise ValueError(f"scorer kind must be one of {list(MODEL_KINDS)}; got {kind!r}")
        self.name = name
        self.kind = kind
        self.native = native
        self.transform = transform
        self.params: dict[str, Any] = dict(params or {})
        self.feature_names: list[str] = list(transform.feature_names)
        self._pos_index = 1
        if kind != "lightgbm":
            classes = list(getattr(native, "classes_", [0, 1]))
            if 1 not in classes:
                raise ValueError(
                    f"scorer {name!r}: the estimator's classes_ {classes} lack the positive "
                    "class 1; train on 0/1 labels (tabguard.io.check_labels)"
                )
            self._pos_index = classes.index(1)

    def __repr__(self) -> str:
        return f"Scorer(name={self.name!r}, kind={self.kind!r}, features={len(self.feature_names)})"

    @property
    def n_features(self) -> int:
        """Number of model features."""
        return len(self.feature_names)

    def positive_proba_matrix(self, X: np.ndarray) -> np.ndarray:
        """P(positive label) for an already transformed matrix.

        Parameters
        ----------
        X : ndarray of shape (n, n_features)
            Output of ``self.transform.transform_frame``.

        Returns
        -------
        ndarray of shape (n,)
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"scorer {self.name!r} expects a matrix with {self.n_features} columns "
                f"{self.feature_names[:5]}...; got shape {X.shape}"
            )
        if self.kind == "lightgbm":
            kw = {"num_threads": 1} if len(X) < _SINGLE_THREAD_ROWS else {}
            return np.asarray(self.native.predict(X, **kw), dtype=np.float64)
        if self.kind == "logistic":
            return self._linear_proba(X)
        proba = self.native.predict_proba(X)
        return np.asarray(proba[:, self._pos_index], dtype=np.float64)

    def _linear_proba(self, X: np.ndarray) -> np.ndarray:
        # sklearn's X @ coef goes through BLAS, whose summation order depends on the batch
        # size: one request and the same row in a batch would differ in the last bit. A
        # row-wise reduction is batch-independent, so score_record == predict_proba exactly.
        steps = getattr(self.native, "steps", None)
        final = steps[-1][1] if steps else self.native
        Xt = self.native[:-1].transform(X) if steps and len(steps) > 1 else X
        if hasattr(Xt, "toarray"):  # a sparse one-hot output
            Xt = Xt.toarray()
        Xt = np.ascontiguousarray(np.asarray(Xt, dtype=np.float64))
        coef = np.asarray(final.coef_, dtype=np.float64).reshape(-1)
        z = (Xt * coef).sum(axis=1) + float(np.asarray(final.intercept_).reshape(-1)[0])
        p1 = 1.0 / (1.0 + np.exp(-z))
        return p1 if self._pos_index == 1 else 1.0 - p1

    def predict_proba(self, df_raw: pd.DataFrame, neutralize: Iterable[str] = ()) -> np.ndarray:
        """Class probabilities for raw rows, scikit-learn's way (columns in :attr:`classes_`).

        Parameters
        ----------
        df_raw : DataFrame
            Raw attributes; extra columns (id, label, protected) are ignored.
        neutralize : iterable of str
            Features replaced by their neutral value (a runtime flag).

        Returns
        -------
        ndarray of shape (n, 2)
            P(other label), P(positive label).
        """
        p = self.positive_proba(df_raw, neutralize)
        return np.column_stack([1.0 - p, p])

    def positive_proba(self, df_raw: pd.DataFrame, neutralize: Iterable[str] = ()) -> np.ndarray:
        """P(positive label) for raw rows: column 1 of :meth:`predict_proba`, as one array.

        Parameters
        ----------
        df_raw : DataFrame
            Raw attributes (validated against the contract beforehand); extra columns (id,
            label, protected) are ignored.
        neutralize : iterable of str
            Features replaced by their neutral value (a runtime flag).

        Returns
        -------
        ndarray of shape (n,)
        """
        return self.positive_proba_matrix(self.transform.transform_frame(df_raw, neutralize))

    def score_record(
        self, record: Mapping[str, Any], neutralize: Iterable[str] = ()
    ) -> tuple[float, list[str]]:
        """Score one raw record through the per-record transform.

        Returns
        -------
        score : float
            P(positive label).
        actions : list of str
            Guard actions of the transform (``clip:AGE``, ``bin:AGE``, ``neutralize:...``).
        """
        row, actions = self.transform.transform_record(record, neutralize)
        return float(self.positive_proba_matrix(row)[0]), actions
