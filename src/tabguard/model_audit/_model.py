"""What the model audit needs from a model, and adapters that provide it.

The audit talks to one object, :class:`AuditedModel`: a contract, a decision threshold and a
:class:`MatrixModel` - the model seen as a function of a numeric matrix whose columns are
contract features. Working on the matrix lets the checks perturb one column of many rows at
once (partial dependence, probes, attacks) and lets tree readers and SHAP see the same
columns as the native model.

Models are adapted by what they can do (:func:`as_audited_model`), never by their class:

* a **scorer with a transform** (``transform``: :class:`~tabguard.contract.FeatureTransform`,
  ``positive_proba_matrix``, optional ``native``), e.g. :class:`tabguard.training.Scorer`;
* a **MatrixModel** (``encode``, ``predict_matrix``, ``categories``);
* a **scikit-learn classifier** - an estimator or a pipeline, anything with ``predict_proba``,
  ``classes_`` and ``feature_names_in_`` - trained on raw columns: adapted like a skops file
  (:mod:`tabguard.model_audit._thirdparty`), so its trees are read when it has some;
* any other **raw scorer** exposing ``predict_proba(df_raw)`` for a contract (a black box:
  categories are coded by their position in the contract), returning P(positive) as one
  column or, scikit-learn's way, one column per class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from tabguard.contract import Contract, FeatureTransform
from tabguard.model_audit._trees import TreeEnsemble, read_trees


@runtime_checkable
class RawScorer(Protocol):
    """The minimum an auditable model offers: probabilities for raw rows."""

    def predict_proba(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Of each row of raw attributes: P(positive label), shape (n,), or the probability of
        each class, shape (n, n_classes), with the classes in ``classes_`` (or 0, 1)."""
        ...


class MatrixModel(Protocol):
    """A model as a function of a numeric matrix whose columns are contract features.

    Attributes
    ----------
    feature_names : list of str
        The matrix columns (each a contract feature), in order.
    native : object or None
        The library model (for tree readers and SHAP), when its inputs are these columns.
    """

    feature_names: list[str]
    native: Any

    def encode(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Raw attributes → matrix."""
        ...

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Matrix → P(positive label)."""
        ...

    def categories(self, feature: str) -> list[Any] | None:
        """Raw value of each code of a categorical column (code ``i`` is ``categories[i]``),
        or None for an ordered (numeric or boolean) column."""
        ...


# --------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------
class TransformMatrix:
    """Adapter for scorers that carry a contract :class:`FeatureTransform`.

    Parameters
    ----------
    scorer : object
        Has ``transform`` (FeatureTransform) and ``positive_proba_matrix(X)``; ``native`` is
        optional.
    """

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.transform: FeatureTransform = scorer.transform
        self.feature_names = list(self.transform.feature_names)
        self.native = getattr(scorer, "native", None)
        self._cats = set(self.transform.categorical_features)

    def encode(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Apply the model's own transform (clipping, bins, neutral values)."""
        return self.transform.transform_frame(df_raw)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Score a transformed matrix."""
        return np.asarray(self.scorer.positive_proba_matrix(X), dtype=float)

    def categories(self, feature: str) -> list[Any] | None:
        """Categories in contract order (the transform codes them by position)."""
        if feature not in self._cats:
            return None
        return list(self.transform.contract.features[feature].categories or [])


class RawMatrix:
    """Adapter for a black-box raw scorer: the matrix holds raw values, categories by code.

    Parameters
    ----------
    scorer : RawScorer
    contract : Contract
    """

    def __init__(self, scorer: RawScorer, contract: Contract) -> None:
        self.scorer = scorer
        self.contract = contract
        self.feature_names = contract.model_features()
        self.native = None
        self._cats = {
            n: list(contract.features[n].categories or [])
            for n in self.feature_names
            if contract.features[n].type == "category"
        }

    def encode(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Raw values as floats; categories as their index in the contract."""
        return encode_raw(df_raw, self.feature_names, self._cats)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Decode the matrix to raw rows and call the scorer (P(positive))."""
        df = decode_raw(X, self.feature_names, self._cats, self.contract)
        return positive_column(self.scorer, self.scorer.predict_proba(df), self.contract)

    def categories(self, feature: str) -> list[Any] | None:
        """Contract categories of a categorical feature."""
        return self._cats.get(feature)


def positive_column(model: Any, proba: Any, contract: Contract) -> np.ndarray:
    """P(positive) from what a ``predict_proba`` returned: one column as is; of several, the
    column of the contract's positive label in ``model.classes_`` (of 0/1 classes, 1)."""
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        return p
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(
            f"predict_proba of {type(model).__name__} returned shape {p.shape}; expected (n,) "
            "or (n, n_classes)"
        )
    classes = list(getattr(model, "classes_", range(p.shape[1])))
    pos = contract.label.positive
    match = [i for i, c in enumerate(classes) if same_label(c, pos)]
    if not match:
        match = [i for i, c in enumerate(classes) if same_label(c, 1)]
    if not match:
        raise ValueError(
            f"predict_proba of {type(model).__name__}: none of its classes {classes} is the "
            f"contract's positive label {pos!r}"
        )
    return p[:, match[0]]


def same_label(a: Any, b: Any) -> bool:
    """Whether two label values are the same (strings by text, numbers by value: 1 == 1.0)."""
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return False


def encode_raw(df: pd.DataFrame, names: Sequence[str], cats: dict[str, list[Any]]) -> np.ndarray:
    """Encode raw columns: numbers as floats, booleans 0/1, categories by list position.

    Unknown categories become NaN.
    """
    out = np.empty((len(df), len(names)), dtype=float)
    for j, n in enumerate(names):
        col = df[n]
        if n in cats:
            index = {_key(c): i for i, c in enumerate(cats[n])}
            out[:, j] = [index.get(_key(v), math.nan) for v in col.tolist()]
        elif pd.api.types.is_bool_dtype(col):
            out[:, j] = col.to_numpy(dtype=float)
        else:
            out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    return out


def decode_raw(
    X: np.ndarray, names: Sequence[str], cats: dict[str, list[Any]], contract: Contract
) -> pd.DataFrame:
    """Inverse of :func:`encode_raw`, with the contract's types (integers, booleans)."""
    data: dict[str, Any] = {}
    for j, n in enumerate(names):
        x = X[:, j]
        spec = contract.features[n]
        if n in cats:
            values = np.asarray(cats[n], dtype=object)
            codes = np.nan_to_num(x, nan=-1).astype(int)
            col = np.where(
                (codes >= 0) & (codes < len(values)), values[np.clip(codes, 0, None)], None
            )
            data[n] = pd.Series(col, dtype=object)
        elif spec.type == "boolean":
            data[n] = pd.Series(x > 0.5)
        elif spec.type == "integer" and not np.isnan(x).any() and np.all(x == np.round(x)):
            data[n] = pd.Series(x.astype(np.int64))
        else:
            data[n] = pd.Series(x)
    return pd.DataFrame(data)


def _key(v: Any) -> Any:
    if isinstance(v, bool | np.bool_):
        return ("b", bool(v))
    if isinstance(v, int | float | np.integer | np.floating):
        f = float(v)
        return ("n", f) if math.isfinite(f) else ("x", repr(v))
    return ("s", str(v))


# --------------------------------------------------------------------------------------------
# The audited model
# --------------------------------------------------------------------------------------------
class AuditedModel:
    """A model, its contract and its decision rule, as every check of the audit sees it.

    Parameters
    ----------
    matrix : MatrixModel
    contract : Contract
    threshold : float, optional
        Decision threshold on P(positive); defaults to the contract's.
    name : str
        Shown in reports.
    source : str
        Where the model came from (a path, "tabguard model", ...).

    Examples
    --------
    >>> m = as_audited_model(bundle)  # doctest: +SKIP
    >>> m.approve(m.positive_proba(df)).mean()  # doctest: +SKIP
    0.87
    """

    classes_ = (0, 1)
    """Columns of :meth:`predict_proba`: 1 is the contract's positive label."""

    def __init__(
        self,
        matrix: MatrixModel,
        contract: Contract,
        threshold: float | None = None,
        *,
        name: str = "model",
        source: str = "<object>",
    ) -> None:
        unknown = [n for n in matrix.feature_names if n not in contract.features]
        if unknown:
            raise ValueError(
                f"model columns {unknown[:5]} are not features of contract '{contract.name}'"
            )
        self.matrix = matrix
        self.contract = contract
        self.threshold = float(contract.decision.threshold if threshold is None else threshold)
        self.name = name
        self.source = source
        self.feature_names = list(matrix.feature_names)
        self._template = _template_row(contract)

    def __repr__(self) -> str:
        return (
            f"AuditedModel(name={self.name!r}, features={len(self.feature_names)}, "
            f"threshold={self.threshold})"
        )

    # -- scoring ---------------------------------------------------------------------------
    def encode(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Raw rows → model matrix."""
        return self.matrix.encode(df_raw)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Model matrix → P(positive)."""
        return np.asarray(self.matrix.predict_matrix(np.asarray(X, dtype=float)), dtype=float)

    def positive_proba(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Raw rows → P(positive), shape (n,)."""
        return self.predict_matrix(self.encode(df_raw))

    def predict_proba(self, df_raw: pd.DataFrame) -> np.ndarray:
        """Raw rows → class probabilities, scikit-learn's shape (n, 2) (see ``classes_``)."""
        p = self.positive_proba(df_raw)
        return np.column_stack([1.0 - p, p])

    @property
    def positive_means_deny(self) -> bool:
        """True when a high score leads to a denial (credit default, fraud)."""
        return self.contract.decision.positive_means == "deny"

    def approve(self, scores: np.ndarray) -> np.ndarray:
        """Decision for each score: True = approve (the favourable decision)."""
        s = np.asarray(scores, dtype=float)
        return s < self.threshold if self.positive_means_deny else s >= self.threshold

    def favourable_sign(self) -> float:
        """-1 when lowering the score helps the subject, +1 when raising it does."""
        return -1.0 if self.positive_means_deny else 1.0

    # -- columns ---------------------------------------------------------------------------
    def column(self, feature: str) -> int:
        """Matrix column of a feature."""
        return self.feature_names.index(feature)

    def categories(self, feature: str) -> list[Any] | None:
        """Raw values of a categorical column's codes, None for ordered columns."""
        return self.matrix.categories(feature)

    def encode_value(self, feature: str, value: Any) -> float:
        """The matrix value the model sees for one raw value of ``feature``."""
        row = dict(self._template)
        row[feature] = value
        return float(self.matrix.encode(pd.DataFrame([row]))[0, self.column(feature)])

    def decode_value(self, feature: str, x: float) -> Any:
        """A raw value that encodes to ``x`` (category codes → categories)."""
        cats = self.categories(feature)
        if cats is not None:
            return cats[int(x)] if 0 <= int(x) < len(cats) else None
        spec = self.contract.features[feature]
        if spec.type == "boolean":
            return bool(x > 0.5)
        if spec.type == "integer" and float(x).is_integer():
            return int(x)
        return float(x)

    @cached_property
    def trees(self) -> TreeEnsemble | None:
        """The tree structure of the native model, when it is a readable tree ensemble."""
        source = getattr(self.matrix, "tree_source", None)
        native = getattr(self.matrix, "native", None)
        if source is None and native is None:
            return None
        try:
            if source is not None:
                return read_trees(source[0], self.feature_names, source[1])
            return read_trees(native, self.feature_names)
        except (KeyError, ValueError, TypeError, AttributeError):
            return None


def _template_row(contract: Contract) -> dict[str, Any]:
    return contract.neutral_record()


def as_audited_model(
    model: Any,
    contract: Contract | None = None,
    threshold: float | None = None,
    *,
    name: str | None = None,
    source: str = "<object>",
) -> AuditedModel:
    """Adapt a model object for the audit.

    Parameters
    ----------
    model : object
        An :class:`AuditedModel` (returned as is, or re-thresholded), a model bundle (``main``,
        ``contract``, ``threshold``), a scorer with ``transform`` and
        ``positive_proba_matrix``, an object with ``encode``/``predict_matrix``/``categories``
        (a :class:`MatrixModel`), a fitted scikit-learn classifier or pipeline trained on the
        contract's raw columns (``predict_proba``, ``classes_``, ``feature_names_in_``), or
        any raw scorer with ``predict_proba(df_raw)``. Dispatch is on these capabilities, in
        this order, never on the class.
    contract : Contract, optional
        Required unless the model carries one (bundle, scorer transform).
    threshold : float, optional
        Overrides the model's or contract's decision threshold.

    Raises
    ------
    TypeError
        The object offers none of these interfaces.
    ValueError
        No contract given for a model that does not carry one.
    """
    if isinstance(model, AuditedModel):
        if threshold is None and contract is None:
            return model
        return AuditedModel(
            model.matrix,
            contract or model.contract,
            model.threshold if threshold is None else threshold,
            name=name or model.name,
            source=model.source,
        )
    if hasattr(model, "main") and hasattr(model, "contract"):
        thr = threshold if threshold is not None else getattr(model, "threshold", None)
        return as_audited_model(
            model.main,
            contract or model.contract,
            thr,
            name=name or str(getattr(model, "version", "main")),
            source=str(getattr(model, "path", source)),
        )
    matrix: MatrixModel
    if hasattr(model, "transform") and hasattr(model, "positive_proba_matrix"):
        matrix = TransformMatrix(model)
        contract = contract or model.transform.contract
    elif all(hasattr(model, a) for a in ("encode", "predict_matrix", "categories")):
        matrix = model
        contract = contract or getattr(model, "contract", None)
    elif all(hasattr(model, a) for a in ("predict_proba", "classes_", "feature_names_in_")):
        # a fitted scikit-learn classifier or pipeline on raw columns: the same adapter as a
        # skops file, so the trees of a (pipeline's) tree ensemble are read
        from tabguard.model_audit._thirdparty import sklearn_model

        if contract is None:
            raise ValueError(
                f"a {type(model).__name__} needs its contract: as_audited_model(model, contract)"
            )
        matrix = sklearn_model(model, contract, type(model).__name__)
    elif isinstance(model, RawScorer):
        if contract is None:
            raise ValueError("a raw scorer needs its contract: as_audited_model(model, contract)")
        matrix = RawMatrix(model, contract)
    else:
        raise TypeError(
            f"cannot audit a {type(model).__name__}: expected a tabguard model bundle or scorer, "
            "a MatrixModel, or an object with predict_proba(df_raw)"
        )
    if contract is None:
        raise ValueError("the model carries no contract; pass contract=...")
    return AuditedModel(matrix, contract, threshold, name=name or "model", source=source)
