"""The fast scoring path: one request scored in microseconds, checked equal to the Scorer.

A request is one row. ``lightgbm.Booster.predict`` and scikit-learn's ``predict_proba`` cost
tens to hundreds of microseconds of Python and validation overhead per call, most of it not
arithmetic. :func:`compile_scorer` turns a trained :class:`~tabguard.training.Scorer` into a
:class:`FastScorer` that evaluates the same model on one already transformed row:

* LightGBM: the text model (thresholds printed with 17 significant digits, so exact) is
  compiled to flat arrays and walked by a numba function that follows LightGBM's own decision
  rules (missing-value types, default directions, categorical bitsets, the zero threshold);
* random forest: scikit-learn's tree arrays, walked by numba with the features rounded to
  float32 first, as scikit-learn does;
* logistic regression (a Pipeline of imputer, scaler, one-hot encoder): folded into one vector
  of per-column operations and a dot product in numpy.

Nothing is trusted: at load the fast path scores a check sample — random valid records of the
contract, plus rows sitting exactly on, and one float step either side of, every split
threshold — and must equal ``Scorer.positive_proba_matrix`` within ``tol`` (1e-9). Otherwise
the service scores through the Scorer itself and says why (``FastScorer.reason``).

The transform (clip, neutral values, bins, encoding) is not re-implemented here: it stays
:meth:`FeatureTransform.transform_record`, the code path training used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tabguard.contract import Contract
    from tabguard.training import Scorer

log = logging.getLogger(__name__)

#: Largest difference allowed between the fast path and the Scorer on the check sample.
DEFAULT_TOLERANCE = 1e-9


class UnsupportedModelError(Exception):
    """The fast path cannot represent this model exactly (the reason is the message)."""


# --------------------------------------------------------------------------------------------
# numba kernels. Imported lazily: numba's import and first compilation cost seconds, and the
# CLI must not pay that for commands that never score.

_KERNELS: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    if _KERNELS:
        return _KERNELS
    import numba

    @numba.njit(cache=True, nogil=True)
    def lgb_raw(
        x: np.ndarray,
        node_off: np.ndarray,
        leaf_off: np.ndarray,
        catb_off: np.ndarray,
        catw_off: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        dtype: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        leaf: np.ndarray,
        cat_bounds: np.ndarray,
        cat_words: np.ndarray,
    ) -> float:
        total = 0.0
        n_trees = node_off.shape[0] - 1
        for t in range(n_trees):
            start = node_off[t]
            if node_off[t + 1] == start:  # a single-leaf tree
                total += leaf[leaf_off[t]]
                continue
            node = 0
            while node >= 0:
                i = start + node
                fval = x[feature[i]]
                d = dtype[i]
                if d & 1:  # categorical split: LightGBM's CategoricalDecision
                    go_left = False
                    if not math.isnan(fval) and 0.0 <= fval < 2147483648.0:
                        iv = int(fval)
                        cb = catb_off[t] + int(threshold[i])
                        lo = cat_bounds[cb]
                        n_words = cat_bounds[cb + 1] - lo
                        w = iv // 32
                        if w < n_words:
                            word = cat_words[catw_off[t] + lo + w]
                            go_left = ((word >> (iv % 32)) & 1) == 1
                    node = left[i] if go_left else right[i]
                else:  # numerical split: LightGBM's NumericalDecision
                    if -1.0000000180025095e-35 <= fval <= 1.0000000180025095e-35:
                        fval = 0.0  # LightGBM drops inputs with |x| <= kZeroThreshold
                    missing = (d >> 2) & 3
                    if math.isnan(fval) and missing != 2:
                        fval = 0.0
                    if (
                        missing == 1 and -1.0000000180025095e-35 <= fval <= 1.0000000180025095e-35
                    ) or (missing == 2 and math.isnan(fval)):
                        node = left[i] if d & 2 else right[i]
                    elif fval <= threshold[i]:
                        node = left[i]
                    else:
                        node = right[i]
            total += leaf[leaf_off[t] + (-node - 1)]
        return total

    @numba.njit(cache=True, nogil=True)
    def forest_proba(
        x: np.ndarray,
        node_off: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        nan_left: np.ndarray,
        value: np.ndarray,
    ) -> float:
        total = 0.0
        n_trees = node_off.shape[0] - 1
        for t in range(n_trees):
            start = node_off[t]
            node = 0
            while left[start + node] != -1:
                i = start + node
                # scikit-learn validates X as float32 and compares it with float64 thresholds.
                v = np.float32(x[feature[i]])
                if math.isnan(v):
                    node = left[i] if nan_left[i] else right[i]
                elif v <= threshold[i]:
                    node = left[i]
                else:
                    node = right[i]
            total += value[start + node]
        return total / n_trees

    _KERNELS["lgb_raw"] = lgb_raw
    _KERNELS["forest_proba"] = forest_proba
    return _KERNELS


# --------------------------------------------------------------------------------------------
# Fast scorers


class FastScorer:
    """Score one transformed row; the base class delegates to the Scorer (the safe path).

    Attributes
    ----------
    scorer : Scorer
        The model it stands for.
    path : str
        ``"numba-lightgbm"``, ``"numba-forest"``, ``"numpy-linear"`` or ``"scorer"``.
    reason : str or None
        Why the Scorer is used instead of a compiled path (``None`` for compiled paths).
    max_abs_diff : float or None
        Largest difference to ``Scorer.positive_proba_matrix`` on the check sample.
    checked_rows : int
        Rows of the check sample.
    """

    path = "scorer"

    def __init__(self, scorer: Scorer, reason: str | None = None) -> None:
        self.scorer = scorer
        self.reason = reason
        self.max_abs_diff: float | None = None
        self.checked_rows = 0

    @property
    def name(self) -> str:
        """``"main"`` or ``"fallback"``."""
        return self.scorer.name

    def score_row(self, row: np.ndarray) -> float:
        """P(positive label) for one transformed row of shape ``(n_features,)``."""
        return float(self.scorer.positive_proba_matrix(row.reshape(1, -1))[0])

    def score_rows(self, X: np.ndarray) -> np.ndarray:
        """Score a matrix row by row through :meth:`score_row` (the path requests take)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        return np.fromiter((self.score_row(r) for r in X), dtype=np.float64, count=len(X))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for ``/health`` and the start-up log."""
        return {
            "scorer": self.name,
            "kind": self.scorer.kind,
            "path": self.path,
            "reason": self.reason,
            "max_abs_diff": self.max_abs_diff,
            "checked_rows": self.checked_rows,
        }


class LightGBMFast(FastScorer):
    """A LightGBM binary model compiled from its text dump, walked by numba."""

    path = "numba-lightgbm"

    def __init__(self, scorer: Scorer) -> None:
        super().__init__(scorer)
        text = scorer.native.model_to_string()
        self._parse(text, scorer.n_features)
        self._kernel = _kernels()["lgb_raw"]

    def _parse(self, text: str, n_features: int) -> None:
        head, _, body = text.partition("\nTree=")
        header = _key_values(head.splitlines())
        if header.get("num_class", "1") != "1" or header.get("num_tree_per_iteration", "1") != "1":
            raise UnsupportedModelError("multi-class LightGBM models are not compiled")
        objective = header.get("objective", "").split()
        if not objective or objective[0] != "binary":
            raise UnsupportedModelError(f"objective {header.get('objective')!r} is not 'binary'")
        sigmoid = 1.0
        for part in objective[1:]:
            if part.startswith("sigmoid:"):
                sigmoid = float(part.split(":", 1)[1])
        if "average_output" in header:
            raise UnsupportedModelError("average_output (random-forest mode) is not compiled")
        if int(header.get("max_feature_idx", n_features - 1)) != n_features - 1:
            raise UnsupportedModelError("the model's feature count differs from the transform's")
        body = body.split("\nend of trees", 1)[0]
        feature, threshold, dtype, left, right, leaf = [], [], [], [], [], []
        cat_bounds: list[int] = []
        cat_words: list[int] = []
        node_off, leaf_off, catb_off, catw_off = [0], [0], [0], [0]
        for block in ("Tree=" + body).split("\nTree=")[0:]:
            lines = block.strip().splitlines()
            if not lines:
                continue
            kv = _key_values(lines[1:])
            if kv.get("is_linear", "0") != "0":
                raise UnsupportedModelError("linear trees are not compiled")
            n_leaves = int(kv["num_leaves"])
            leaves = _floats(kv["leaf_value"])
            if len(leaves) != n_leaves:
                raise UnsupportedModelError("a tree's leaf count does not match its leaves")
            leaf += leaves
            leaf_off.append(len(leaf))
            if n_leaves > 1:
                feature += _ints(kv["split_feature"])
                threshold += _floats(kv["threshold"])
                dtype += _ints(kv["decision_type"])
                left += _ints(kv["left_child"])
                right += _ints(kv["right_child"])
            node_off.append(len(feature))
            if int(kv.get("num_cat", "0")) > 0:
                cat_bounds += _ints(kv["cat_boundaries"])
                cat_words += _ints(kv["cat_threshold"])
            catb_off.append(len(cat_bounds))
            catw_off.append(len(cat_words))
        if len(node_off) < 2:
            raise UnsupportedModelError("the model has no trees")
        self.n_trees = len(node_off) - 1
        self.sigmoid = sigmoid
        self._arrays = (
            np.asarray(node_off, dtype=np.int64),
            np.asarray(leaf_off, dtype=np.int64),
            np.asarray(catb_off[:-1], dtype=np.int64),
            np.asarray(catw_off[:-1], dtype=np.int64),
            np.asarray(feature, dtype=np.int64),
            np.asarray(threshold, dtype=np.float64),
            np.asarray(dtype, dtype=np.int64),
            np.asarray(left, dtype=np.int64),
            np.asarray(right, dtype=np.int64),
            np.asarray(leaf, dtype=np.float64),
            np.asarray(cat_bounds or [0], dtype=np.int64),
            np.asarray(cat_words or [0], dtype=np.uint32).astype(np.int64),
        )
        self.thresholds = _numeric_thresholds(
            np.asarray(feature, dtype=np.int64),
            np.asarray(threshold, dtype=np.float64),
            (np.asarray(dtype, dtype=np.int64) & 1) == 0,
        )

    def score_row(self, row: np.ndarray) -> float:
        """P(positive label) for one transformed row."""
        raw = self._kernel(row, *self._arrays)
        return 1.0 / (1.0 + math.exp(-self.sigmoid * raw))


class ForestFast(FastScorer):
    """A scikit-learn random forest, its trees flattened and walked by numba."""

    path = "numba-forest"

    def __init__(self, scorer: Scorer) -> None:
        super().__init__(scorer)
        native = scorer.native
        trees = getattr(native, "estimators_", None)
        if not trees or not all(hasattr(t, "tree_") for t in trees):
            raise UnsupportedModelError("not a fitted forest of decision trees")
        pos = list(native.classes_).index(1)
        feature, threshold, left, right, nan_left, value = [], [], [], [], [], []
        node_off = [0]
        for est in trees:
            tree = est.tree_
            if tree.n_outputs != 1:
                raise UnsupportedModelError("multi-output forests are not compiled")
            v = np.asarray(tree.value[:, 0, :], dtype=np.float64)
            total = v.sum(axis=1)
            total[total == 0.0] = 1.0
            # DecisionTreeClassifier.predict_proba normalises the leaf's class values.
            p = v[:, pos] / total
            miss = getattr(tree, "missing_go_to_left", None)
            feature.append(np.asarray(tree.feature, dtype=np.int64))
            threshold.append(np.asarray(tree.threshold, dtype=np.float64))
            left.append(np.asarray(tree.children_left, dtype=np.int64))
            right.append(np.asarray(tree.children_right, dtype=np.int64))
            nan_left.append(
                np.zeros(tree.node_count, dtype=np.bool_)
                if miss is None
                else np.asarray(miss, dtype=np.bool_)
            )
            value.append(p)
            node_off.append(node_off[-1] + tree.node_count)
        cat = np.concatenate
        f, th, le = cat(feature), cat(threshold), cat(left)
        self._arrays = (
            np.asarray(node_off, dtype=np.int64),
            f,
            th,
            le,
            cat(right),
            cat(nan_left),
            cat(value),
        )
        self.n_trees = len(trees)
        self.thresholds = _numeric_thresholds(f, th, le != -1)
        self._kernel = _kernels()["forest_proba"]

    def score_row(self, row: np.ndarray) -> float:
        """P(positive label) for one transformed row."""
        return float(self._kernel(row, *self._arrays))


class LinearFast(FastScorer):
    """A logistic-regression pipeline folded into per-column operations and one dot product.

    Supported steps before ``LogisticRegression``: ``SimpleImputer`` (without indicator),
    ``StandardScaler``, ``OneHotEncoder`` (no ``drop``, no infrequent categories), and a
    ``ColumnTransformer`` of those (``drop``/``passthrough`` allowed), in any nesting that
    keeps imputation before scaling.
    """

    path = "numpy-linear"

    def __init__(self, scorer: Scorer) -> None:
        super().__init__(scorer)
        native = scorer.native
        steps = list(getattr(native, "steps", [("clf", native)]))
        clf = steps[-1][1]
        coef = np.asarray(getattr(clf, "coef_", None), dtype=np.float64)
        if coef.ndim != 2 or coef.shape[0] != 1:
            raise UnsupportedModelError("not a binary linear classifier with coef_ of shape (1, n)")
        cols: list[_Col] = [_Col(j) for j in range(scorer.n_features)]
        for _, step in steps[:-1]:
            cols = _apply_step(step, cols)
        outputs: list[tuple[_Col, Any]] = []
        for col in cols:
            outputs += (
                [(col, None)] if col.categories is None else [(col, c) for c in col.categories]
            )
        if len(outputs) != coef.shape[1]:
            raise UnsupportedModelError(
                f"the pipeline gives {len(outputs)} columns but the model has {coef.shape[1]}"
            )
        w = coef[0]
        num = [(k, c) for k, (c, cat) in enumerate(outputs) if c.categories is None]
        self._num_src = np.asarray([c.source for _, c in num], dtype=np.int64)
        self._num_impute = np.asarray([c.impute for _, c in num], dtype=np.float64)
        self._num_mean = np.asarray([c.mean for _, c in num], dtype=np.float64)
        self._num_scale = np.asarray([c.scale for _, c in num], dtype=np.float64)
        self._num_coef = np.asarray([w[k] for k, _ in num], dtype=np.float64)
        self._has_impute = ~np.isnan(self._num_impute)
        blocks: dict[int, tuple[int, dict[float, float], float]] = {}
        for k, (c, cat) in enumerate(outputs):
            if c.categories is None:
                continue
            src, table, nan_coef = blocks.get(id(c), (c.source, {}, 0.0))
            if isinstance(cat, float) and math.isnan(cat):
                nan_coef = float(w[k])
            else:
                table[float(cat)] = float(w[k])
            blocks[id(c)] = (src, table, nan_coef)
        self._cat_blocks = list(blocks.values())
        self._intercept = float(np.asarray(clf.intercept_).reshape(-1)[0])
        self._flip = list(clf.classes_).index(1) == 0

    def score_row(self, row: np.ndarray) -> float:
        """P(positive label) for one transformed row."""
        v = row[self._num_src]
        v = np.where(self._has_impute & np.isnan(v), self._num_impute, v)
        z = self._intercept + float(np.dot((v - self._num_mean) / self._num_scale, self._num_coef))
        for src, table, nan_coef in self._cat_blocks:
            x = row[src]
            z += nan_coef if math.isnan(x) else table.get(float(x), 0.0)
        p1 = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return 1.0 - p1 if self._flip else p1


class _Col:
    """One output column of a linear pipeline: source input column and its operations."""

    def __init__(self, source: int) -> None:
        self.source = source
        self.impute = math.nan
        self.mean = 0.0
        self.scale = 1.0
        self.scaled = False
        self.categories: list[Any] | None = None


def _apply_step(step: Any, cols: list[_Col]) -> list[_Col]:
    kind = type(step).__name__
    if kind == "Pipeline":
        for _, sub in step.steps:
            cols = _apply_step(sub, cols)
        return cols
    if kind == "ColumnTransformer":
        out: list[_Col] = []
        for _, trans, idx in step.transformers_:
            chosen = [cols[i] for i in _indices(idx, len(cols))]
            if isinstance(trans, str):
                if trans == "drop":
                    continue
                if trans == "passthrough":
                    out += chosen
                    continue
                raise UnsupportedModelError(f"ColumnTransformer entry {trans!r}")
            out += _apply_step(trans, chosen)
        return out
    if kind == "SimpleImputer":
        if getattr(step, "add_indicator", False) or not _is_nan(step.missing_values):
            raise UnsupportedModelError("SimpleImputer with indicator or non-NaN missing_values")
        stats = np.asarray(step.statistics_, dtype=np.float64)
        if len(stats) != len(cols):
            raise UnsupportedModelError("SimpleImputer dropped columns (all-missing in training)")
        for col, s in zip(cols, stats, strict=True):
            if col.categories is not None or col.scaled or not math.isnan(col.impute):
                raise UnsupportedModelError("imputation after scaling or encoding")
            col.impute = float(s)
        return cols
    if kind == "StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None
        for j, col in enumerate(cols):
            if col.categories is not None or col.scaled:
                raise UnsupportedModelError("scaling after encoding or scaling twice")
            col.mean = 0.0 if mean is None else float(mean[j])
            col.scale = 1.0 if scale is None else float(scale[j])
            col.scaled = True
        return cols
    if kind == "OneHotEncoder":
        if step.drop is not None or getattr(step, "_infrequent_enabled", False):
            raise UnsupportedModelError("OneHotEncoder with drop or infrequent categories")
        out = []
        for col, cats in zip(cols, step.categories_, strict=True):
            if col.scaled or not math.isnan(col.impute) or col.categories is not None:
                raise UnsupportedModelError("one-hot encoding of an imputed or scaled column")
            new = _Col(col.source)
            new.categories = [float(c) for c in cats]
            out.append(new)
        return out
    raise UnsupportedModelError(f"pipeline step {kind} is not supported")


def _indices(idx: Any, n: int) -> list[int]:
    if isinstance(idx, slice):
        return list(range(n))[idx]
    arr = np.asarray(idx)
    if arr.dtype == bool:
        return [int(i) for i in np.flatnonzero(arr)]
    if arr.dtype.kind not in "iu":
        raise UnsupportedModelError("ColumnTransformer columns selected by name")
    return [int(i) for i in arr.reshape(-1)]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _key_values(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
        elif line.strip():
            out[line.strip()] = ""
    return out


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split()]


def _numeric_thresholds(
    feature: np.ndarray, threshold: np.ndarray, numeric: np.ndarray
) -> dict[int, np.ndarray]:
    """Distinct numeric split thresholds per feature (for the boundary rows of the check)."""
    out: dict[int, np.ndarray] = {}
    for j in np.unique(feature[numeric]):
        out[int(j)] = np.unique(threshold[numeric & (feature == j)])
    return out


_BUILDERS: Mapping[str, type[FastScorer]] = {
    "lightgbm": LightGBMFast,
    "random_forest": ForestFast,
    "logistic": LinearFast,
}


# --------------------------------------------------------------------------------------------
# The check sample and compilation


def random_records(contract: Contract, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Draw ``n`` random records that pass the contract's validation.

    Numbers are drawn uniformly in ``[min, max]`` (log-uniformly when the range spans orders
    of magnitude, so small values occur too), rounded to the declared precision; categories
    and booleans uniformly; a nullable feature is missing one time in ten. Records breaking a
    combination rule are redrawn.

    Parameters
    ----------
    contract : Contract
    n : int
        Number of records.
    seed : int
        Seed of the generator.

    Returns
    -------
    list of dict
    """
    from tabguard.contract import RecordValidator

    rng = np.random.default_rng(seed)
    validator = RecordValidator(contract)
    out: list[dict[str, Any]] = []
    for _ in range(50 * n):
        if len(out) >= n:
            break
        record = {name: _draw(spec, rng) for name, spec in contract.items()}
        if not validator.errors(record):
            out.append(record)
    return out


def _draw(spec: Any, rng: np.random.Generator) -> Any:
    if spec.nullable and rng.random() < 0.1:
        return None
    if spec.type == "category":
        return spec.categories[int(rng.integers(len(spec.categories)))]
    if spec.type == "boolean":
        return bool(rng.integers(2))
    lo = -1e6 if spec.min is None else spec.min
    hi = 1e6 if spec.max is None else spec.max
    if lo >= 0 and hi > 1000 * max(lo, 1.0) and rng.random() < 0.5:
        x = float(np.exp(rng.uniform(math.log(max(lo, 1.0)), math.log(hi))))
    else:
        x = float(rng.uniform(lo, hi))
    x = min(max(x, lo), hi)
    if spec.type == "integer":
        return int(min(max(round(x), math.ceil(lo)), math.floor(hi)))
    decimals = spec.decimals
    if decimals is not None:
        x = round(x, decimals)
        x = min(max(x, lo), hi)
    return x


def check_matrix(
    scorer: Scorer,
    thresholds: Mapping[int, np.ndarray] | None = None,
    *,
    n: int = 200,
    max_thresholds: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """The matrix the fast path is checked on: random valid rows plus threshold rows.

    For numeric split thresholds of a tree model (all of them, or a random ``max_thresholds``
    of them for large forests), rows are added whose feature sits on the threshold and one
    float step below and above it: the places where a wrong comparison (``<`` for ``<=``,
    float32 vs float64) would show.
    """
    import pandas as pd

    records = random_records(scorer.transform.contract, n, seed=seed)
    neutral = scorer.transform.contract.neutral_record()
    base = scorer.transform.transform_frame(pd.DataFrame([neutral, *records]))
    rows = [base]
    if thresholds:
        rng = np.random.default_rng(seed + 1)
        # Non-finite thresholds (scikit-learn's "missing vs present" splits) have no neighbours.
        pairs = [(j, float(th)) for j, ths in thresholds.items() for th in ths if np.isfinite(th)]
        if len(pairs) > max_thresholds:
            keep = rng.choice(len(pairs), size=max_thresholds, replace=False)
            pairs = [pairs[i] for i in sorted(keep)]
        extra = []
        for j, th in pairs:
            for v in (np.nextafter(th, -np.inf), th, np.nextafter(th, np.inf)):
                row = base[int(rng.integers(len(base)))].copy()
                row[j] = v
                extra.append(row)
        if extra:
            rows.append(np.asarray(extra, dtype=np.float64))
    return np.ascontiguousarray(np.vstack(rows), dtype=np.float64)


def compile_scorer(
    scorer: Scorer, *, tol: float = DEFAULT_TOLERANCE, n_check: int = 200, seed: int = 0
) -> FastScorer:
    """Return the fastest faithful way to score ``scorer`` one row at a time.

    Parameters
    ----------
    scorer : Scorer
        A loaded main or fallback scorer.
    tol : float, default 1e-9
        Largest difference to ``scorer.positive_proba_matrix`` allowed on the check sample.
    n_check : int, default 200
        Random valid records in the check sample (threshold rows come on top).
    seed : int
        Seed of the check sample.

    Returns
    -------
    FastScorer
        A compiled scorer that matched, else a :class:`FastScorer` delegating to ``scorer``
        with ``reason`` saying why (also logged as a warning).
    """
    builder = _BUILDERS.get(scorer.kind)
    if builder is None:
        return _fallback(scorer, f"no fast path for model kind {scorer.kind!r}")
    try:
        fast = builder(scorer)
    except UnsupportedModelError as exc:
        return _fallback(scorer, f"model not supported by the fast path: {exc}")
    except Exception as exc:  # a malformed or unexpected model must not stop the service
        return _fallback(scorer, f"compiling the fast path failed: {type(exc).__name__}: {exc}")
    X = check_matrix(scorer, getattr(fast, "thresholds", None), n=n_check, seed=seed)
    try:
        expected = scorer.positive_proba_matrix(X)
        got = fast.score_rows(X)
    except Exception as exc:
        return _fallback(scorer, f"checking the fast path failed: {type(exc).__name__}: {exc}")
    diff = float(np.max(np.abs(got - expected))) if len(X) else 0.0
    if not np.isfinite(diff) or diff > tol:
        worst = int(np.nanargmax(np.abs(got - expected))) if len(X) else -1
        slow = _fallback(
            scorer,
            f"fast path differs from predict_proba by {diff:.3g} > {tol:g} on check row {worst} "
            f"of {len(X)}",
        )
        slow.max_abs_diff, slow.checked_rows = diff, len(X)
        return slow
    fast.max_abs_diff, fast.checked_rows = diff, len(X)
    log.info(
        "scorer %s: %s path, max |diff| %.3g on %d check rows", scorer.name, fast.path, diff, len(X)
    )
    return fast


def _fallback(scorer: Scorer, reason: str) -> FastScorer:
    log.warning("scorer %s: scoring through the Scorer (slow path): %s", scorer.name, reason)
    return FastScorer(scorer, reason)
