"""Read the split structure of tree ensembles (LightGBM, XGBoost, scikit-learn forests).

The backdoor probe and the attacks only need *where* a model can change its mind: the split
thresholds of each numeric feature, the category sets of categorical splits, and which
conditions meet on the path to each leaf. This module turns the native structures of the
supported libraries into one small representation, :class:`TreeEnsemble`.

Dispatch is on what the model object offers (``dump_model``, ``get_dump``, ``estimators_``,
``tree_``), never on a list of classes, so wrappers exposing the same methods work too.
Models this module cannot read give ``None``; the callers then fall back to model-agnostic
candidates (contract range and data quantiles).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Tree:
    """One tree as flat arrays (node ``i``; leaves have ``feature == -1``).

    Attributes
    ----------
    feature : ndarray of int
        Matrix column tested at each internal node, -1 at leaves.
    threshold : ndarray of float
        Numeric threshold (NaN for categorical splits and leaves).
    strict : bool
        True when a numeric split sends ``x < threshold`` left (XGBoost), False for
        ``x <= threshold`` (LightGBM, scikit-learn).
    categories : dict of int to frozenset
        Node → category codes sent left, for categorical splits.
    left, right : ndarray of int
        Children (-1 at leaves).
    value : ndarray of float
        Leaf output (margin for boosting, P(positive) for forests); NaN at internal nodes.
    count : ndarray of float
        Training rows (or hessian cover) reaching the node.
    """

    feature: np.ndarray
    threshold: np.ndarray
    strict: bool
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    count: np.ndarray
    categories: dict[int, frozenset[int]] = field(default_factory=dict)
    # admits() per (column, value): the probe asks the same questions of every tree many times
    _admitted: dict[tuple[int, float], np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def goes_left(self, node: int, x: float) -> bool:
        """Whether value ``x`` of the node's feature follows the left branch."""
        cats = self.categories.get(node)
        if cats is not None:
            return not math.isnan(x) and int(x) in cats
        t = float(self.threshold[node])
        if self.strict:  # XGBoost compares in single precision
            return bool(np.float32(x) < np.float32(t))
        return x <= t

    def leaf_of(self, row: np.ndarray) -> int:
        """The leaf one row of the model matrix reaches."""
        node = 0
        while self.feature[node] >= 0:
            node = int(
                self.left[node]
                if self.goes_left(node, float(row[self.feature[node]]))
                else self.right[node]
            )
        return node

    def leaves(self) -> np.ndarray:
        """Indices of the leaves."""
        return np.flatnonzero(self.feature < 0)

    def route(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row of the model matrix ``X`` reaches (vectorised :meth:`leaf_of`)."""
        node = np.zeros(len(X), dtype=np.int64)
        active = np.flatnonzero(self.feature[node] >= 0)
        while active.size:
            nd = node[active]
            x = X[active, self.feature[nd]]
            thr = self.threshold[nd]
            with np.errstate(invalid="ignore"):
                if self.strict:  # XGBoost compares in single precision
                    left = x.astype(np.float32) < thr.astype(np.float32)
                else:
                    left = x <= thr
            if self.categories:
                for k in np.unique(nd[np.isnan(thr)]):
                    cats = self.categories.get(int(k))
                    if cats is None:
                        continue
                    at = nd == k
                    xs = x[at]
                    ok = ~np.isnan(xs)
                    left[at] = ok & np.isin(np.where(ok, xs, -1).astype(np.int64), list(cats))
            node[active] = np.where(left, self.left[nd], self.right[nd])
            active = active[self.feature[node[active]] >= 0]
        return node

    def admits(self, j: int, x: float) -> np.ndarray:
        """Per node: whether the path from the root to it lets value ``x`` of column ``j``
        through (every split on ``j`` above it sends ``x`` its way). Read-only (cached)."""
        cached = self._admitted.get((j, x))
        if cached is not None:
            return cached
        n = len(self.feature)
        ok = np.zeros(n, dtype=bool)
        ok[0] = True
        for node in range(n):  # children always come after their parent
            f = int(self.feature[node])
            if f < 0 or not ok[node]:
                continue
            left, right = int(self.left[node]), int(self.right[node])
            if f == j:
                go = self.goes_left(node, x)
                ok[left], ok[right] = go, not go
            else:
                ok[left] = ok[right] = True
        ok.setflags(write=False)
        if not math.isnan(x):
            self._admitted[(j, x)] = ok
        return ok


@dataclass
class TreeEnsemble:
    """The trees of a model and the library they come from.

    Attributes
    ----------
    trees : list of Tree
    n_features : int
        Columns of the model matrix the feature indices refer to.
    source : str
        ``lightgbm``, ``xgboost`` or ``sklearn``.
    """

    trees: list[Tree]
    n_features: int
    source: str

    def thresholds(self, j: int) -> np.ndarray:
        """Sorted distinct numeric thresholds of column ``j``."""
        vals = [t.threshold[t.feature == j] for t in self.trees]
        allv = np.concatenate(vals) if vals else np.empty(0)
        allv = allv[~np.isnan(allv)]
        return np.unique(allv)

    def threshold_counts(self, j: int) -> dict[float, int]:
        """How many splits use each threshold of column ``j``."""
        out: dict[float, int] = {}
        for t in self.trees:
            for v in t.threshold[t.feature == j]:
                if not math.isnan(v):
                    out[float(v)] = out.get(float(v), 0) + 1
        return out

    def category_sets(self, j: int) -> list[frozenset[int]]:
        """Category sets of every categorical split on column ``j``."""
        return [
            cats for t in self.trees for node, cats in t.categories.items() if t.feature[node] == j
        ]

    def used_features(self) -> set[int]:
        """Columns used by at least one split."""
        out: set[int] = set()
        for t in self.trees:
            out.update(int(f) for f in t.feature[t.feature >= 0])
        return out

    @property
    def strict(self) -> bool:
        """Split semantics shared by all trees (``x < t`` when True)."""
        return bool(self.trees and self.trees[0].strict)

    @property
    def mass_trees(self) -> list[Tree]:
        """Trees whose node counts are proportional to training rows."""
        return self.trees[:1] if self.source == "xgboost" else self.trees

    def has_splits(self, j: int) -> bool:
        """Whether any split reads column ``j``."""
        return any(bool(np.any(t.feature == j)) for t in self.trees)

    def isolated_share(
        self, cells: Sequence[tuple[int, float, float, int | frozenset[int] | None]]
    ) -> float:
        """Largest share of a tree's training rows that its leaves confine to ``cells``.

        Parameters
        ----------
        cells : sequence of (column, low, high, category)
            One condition per column: ``low < x <= high`` (``low <= x < high`` for strict
            trees), or ``x == category`` when ``category`` is not None (``x in category`` for
            a set of category codes).

        Returns
        -------
        float
            ``max`` over trees of (rows in leaves whose path keeps every column inside its
            condition) / (rows at the root). Leaves are fitted on their rows, so this is a lower
            bound on the share of training rows the trees saw in the cells. XGBoost stores
            hessian covers instead of counts: only in its first tree, where every row has the
            same prediction, are they proportional to rows (later trees weigh uncertain rows
            up), so only that tree is read.
        """
        conds = {int(j): (float(lo), float(hi), cat) for j, lo, hi, cat in cells}
        best = 0.0
        for t in self.mass_trees:
            root = float(t.count[0])
            if root <= 0:
                continue
            inside = 0.0
            start: dict[int, tuple[float, float, frozenset[int] | None]] = dict.fromkeys(
                conds, (-math.inf, math.inf, None)
            )
            stack = [(0, start)]
            while stack:
                node, bounds = stack.pop()
                f = int(t.feature[node])
                if f < 0:
                    if all(_within(bounds[j], conds[j], t.strict) for j in conds):
                        inside += float(t.count[node])
                    continue
                if f not in conds:
                    stack.append((int(t.left[node]), bounds))
                    stack.append((int(t.right[node]), bounds))
                    continue
                lo, hi, cats = bounds[f]
                split = t.categories.get(node)
                if split is not None:
                    left_cats = split if cats is None else cats & split
                    right_cats = None if cats is None else cats - split
                    stack.append((int(t.left[node]), {**bounds, f: (lo, hi, left_cats)}))
                    stack.append((int(t.right[node]), {**bounds, f: (lo, hi, right_cats)}))
                    continue
                thr = float(t.threshold[node])
                stack.append((int(t.left[node]), {**bounds, f: (lo, min(hi, thr), cats)}))
                stack.append((int(t.right[node]), {**bounds, f: (max(lo, thr), hi, cats)}))
            best = max(best, inside / root)
        return best

    def partner_shares(
        self, cell: tuple[int, float, float, int | None], columns: Sequence[int]
    ) -> dict[tuple[int, float, float], float]:
        """Where, inside one cell, the trees put their training rows on other columns.

        For every leaf whose path keeps column ``cell[0]`` inside the cell, the path's interval
        ``(low, high]`` on each column ``j`` of ``columns`` (when the path bounds it at all)
        collects the leaf's rows.

        Returns
        -------
        dict
            ``(j, low, high) -> max over trees of (rows collected) / (rows at the root)``: a
            lower bound on the share of training rows with the cell's value and ``x_j`` in
            ``(low, high]`` (numeric splits of ``j`` only).
        """
        j0, lo0, hi0, cat0 = cell
        cols = [j for j in columns if j != j0]
        index = {j: i for i, j in enumerate(cols)}
        best: dict[tuple[int, float, float], float] = {}
        for t in self.mass_trees:
            root = float(t.count[0])
            n = len(t.feature)
            if root <= 0 or n == 0:
                continue
            lo = np.full((n, len(cols)), -math.inf)
            hi = np.full((n, len(cols)), math.inf)
            own: list[tuple[float, float, frozenset[int] | None]]
            own = [(-math.inf, math.inf, None)] * n
            for node in range(n):  # children always come after their parent
                f = int(t.feature[node])
                if f < 0:
                    continue
                left, right = int(t.left[node]), int(t.right[node])
                lo[left], hi[left] = lo[node], hi[node]
                lo[right], hi[right] = lo[node], hi[node]
                own[left] = own[right] = own[node]
                split = t.categories.get(node)
                if f == j0:
                    a, b, cats = own[node]
                    if split is not None:
                        own[left] = (a, b, split if cats is None else cats & split)
                        own[right] = (a, b, None if cats is None else cats - split)
                    else:
                        thr = float(t.threshold[node])
                        own[left] = (a, min(b, thr), cats)
                        own[right] = (max(a, thr), b, cats)
                elif f in index and split is None:
                    thr = float(t.threshold[node])
                    k = index[f]
                    hi[left, k] = min(hi[left, k], thr)
                    lo[right, k] = max(lo[right, k], thr)
            sums: dict[tuple[int, float, float], float] = {}
            for leaf in np.flatnonzero(t.feature < 0):
                if not _within(own[leaf], (lo0, hi0, cat0), t.strict):
                    continue
                w = float(t.count[leaf])
                for j, i in index.items():
                    a, b = float(lo[leaf, i]), float(hi[leaf, i])
                    if math.isfinite(a) or math.isfinite(b):
                        sums[(j, a, b)] = sums.get((j, a, b), 0.0) + w
            for key, v in sums.items():
                best[key] = max(best.get(key, 0.0), v / root)
        return best


def _within(
    bound: tuple[float, float, frozenset[int] | None],
    cond: tuple[float, float, int | frozenset[int] | None],
    strict: bool,
) -> bool:
    """Whether a path's condition on one column keeps it inside the cell."""
    lo, hi, cats = bound
    clo, chi, cat = cond
    if cat is None:
        return lo >= clo and hi <= chi
    if isinstance(cat, frozenset):  # a set of categories (categorical splits only)
        return cats is not None and cats <= cat
    if cats is not None:
        return cats <= {cat}
    # a category coded as a number and split by thresholds: only this code fits the interval
    if strict:
        return cat - 1 < lo <= cat < hi <= cat + 1
    return cat - 1 <= lo < cat <= hi < cat + 1


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------
def read_trees(
    native: Any, feature_names: Sequence[str], column_map: Sequence[int] | None = None
) -> TreeEnsemble | None:
    """Read the trees of ``native`` whose columns are ``feature_names``.

    Parameters
    ----------
    native : object
        A ``lightgbm.Booster``/``LGBMModel``, an ``xgboost.Booster``/``XGBModel``, or a fitted
        scikit-learn tree or forest (anything with ``tree_`` or ``estimators_`` of such).
    feature_names : sequence of str
        The model matrix's columns, used to resolve split features given by name.
    column_map : sequence of int, optional
        For models behind a preprocessing step (a scikit-learn pipeline): the matrix column
        of each of the estimator's input columns, or -1 when an input is not a plain copy of
        one matrix column (its splits are then ignored).

    Returns
    -------
    TreeEnsemble or None
        None when the object is not a tree model this module can read (e.g. a pipeline with a
        preprocessing step: its splits are not on the matrix's columns).
    """
    names = list(feature_names)
    if column_map is not None:
        inner = _read_sklearn(native, len(column_map))
        return None if inner is None else _remap(inner, list(column_map), len(names))
    if hasattr(native, "get_booster"):  # xgboost's scikit-learn wrappers
        native = native.get_booster()
    if hasattr(native, "get_dump"):  # before LightGBM: xgboost boosters also have dump_model
        return _read_xgboost(native, names)
    booster = getattr(native, "booster_", None)  # lightgbm's scikit-learn wrappers
    if booster is not None and hasattr(booster, "dump_model"):
        native = booster
    if hasattr(native, "dump_model") and hasattr(native, "feature_name"):
        return _read_lightgbm(native.dump_model(), names)
    if hasattr(native, "tree_") or hasattr(native, "estimators_"):
        return _read_sklearn(native, len(names))
    return None


def _remap(ens: TreeEnsemble, column_map: list[int], n_features: int) -> TreeEnsemble:
    """Re-index split features; splits on unmapped inputs get an index no column has."""
    lookup = np.array([m if m >= 0 else n_features + 1 for m in column_map], dtype=np.int64)
    for t in ens.trees:
        internal = t.feature >= 0
        t.feature = np.where(internal, lookup[np.clip(t.feature, 0, None)], t.feature)
    ens.n_features = n_features
    return ens


def _read_lightgbm(dump: dict[str, Any], names: list[str]) -> TreeEnsemble:
    model_names = list(dump.get("feature_names", names))
    remap = _name_map(model_names, names)
    trees = []
    for info in dump["tree_info"]:
        b = _Builder(strict=False)

        def visit(node: dict[str, Any], b: _Builder = b) -> int:
            if "leaf_value" in node or "split_feature" not in node:
                return b.leaf(float(node.get("leaf_value", 0.0)), float(node.get("leaf_count", 0)))
            i = b.internal(remap[int(node["split_feature"])], float(node.get("internal_count", 0)))
            if node.get("decision_type") == "==":
                b.categories[i] = frozenset(int(c) for c in str(node["threshold"]).split("||"))
            else:
                b.threshold[i] = float(node["threshold"])
            b.left[i] = visit(node["left_child"])
            b.right[i] = visit(node["right_child"])
            return i

        visit(info["tree_structure"])
        trees.append(b.build())
    return TreeEnsemble(trees, len(names), "lightgbm")


def _name_map(model_names: list[str], names: list[str]) -> list[int]:
    pos = {n: i for i, n in enumerate(names)}
    if all(n in pos for n in model_names):
        return [pos[n] for n in model_names]
    return list(range(len(model_names)))


_INDICATOR = 0.5


def _read_xgboost(booster: Any, names: list[str]) -> TreeEnsemble:
    model_names = list(booster.feature_names or names)
    pos = {n: i for i, n in enumerate(names)}
    remap = {n: pos.get(n, i) for i, n in enumerate(model_names)}
    trees = []
    for text in booster.get_dump(dump_format="json", with_stats=True):
        root = json.loads(text)
        b = _Builder(strict=True)
        ids: dict[int, int] = {}

        def visit(node: dict[str, Any], b: _Builder = b, ids: dict[int, int] = ids) -> int:
            if "leaf" in node:
                i = b.leaf(float(node["leaf"]), float(node.get("cover", 0.0)))
                ids[int(node["nodeid"])] = i
                return i
            split = node["split"]
            col = remap[split] if split in remap else int(str(split).lstrip("f"))
            i = b.internal(col, float(node.get("cover", 0.0)))
            ids[int(node["nodeid"])] = i
            children = {int(c["nodeid"]): c for c in node["children"]}
            cond = node.get("split_condition", _INDICATOR)
            if isinstance(cond, list):
                # The listed categories follow the "yes" branch (checked against predictions).
                b.categories[i] = frozenset(int(c) for c in cond)
            else:
                # Indicator features have no condition: "yes" is the false (0) side.
                b.threshold[i] = float(cond)
            b.left[i] = visit(children[int(node["yes"])])
            b.right[i] = visit(children[int(node["no"])])
            return i

        visit(root)
        trees.append(b.build())
    ens = TreeEnsemble(trees, len(names), "xgboost")
    return ens


def _read_sklearn(native: Any, n_features: int) -> TreeEnsemble | None:
    if hasattr(native, "tree_"):
        estimators = [native]
    else:
        est = np.asarray(native.estimators_, dtype=object).ravel()
        estimators = [e for e in est if hasattr(e, "tree_")]
        if not estimators:
            return None
    trees = []
    for e in estimators:
        tr = e.tree_
        if tr.n_features != n_features:
            return None
        feat = np.where(tr.children_left >= 0, tr.feature, -1).astype(np.int64)
        value = tr.value[:, 0, :]
        if value.shape[1] >= 2:  # classifier: share of the class with index 1 (positive)
            tot = value.sum(axis=1)
            v = np.divide(value[:, 1], tot, out=np.zeros(len(tot)), where=tot > 0)
        else:  # regressor inside a boosting ensemble
            v = value[:, 0]
        trees.append(
            Tree(
                feature=feat,
                threshold=np.where(feat >= 0, tr.threshold, np.nan).astype(float),
                strict=False,
                left=tr.children_left.astype(np.int64),
                right=tr.children_right.astype(np.int64),
                value=np.where(feat < 0, v, np.nan).astype(float),
                count=tr.weighted_n_node_samples.astype(float),
            )
        )
    return TreeEnsemble(trees, n_features, "sklearn")


class _Builder:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.feature: list[int] = []
        self.threshold: dict[int, float] = {}
        self.left: dict[int, int] = {}
        self.right: dict[int, int] = {}
        self.value: dict[int, float] = {}
        self.count: list[float] = []
        self.categories: dict[int, frozenset[int]] = {}

    def leaf(self, value: float, count: float) -> int:
        i = len(self.feature)
        self.feature.append(-1)
        self.count.append(count)
        self.value[i] = value
        return i

    def internal(self, feature: int, count: float) -> int:
        i = len(self.feature)
        self.feature.append(feature)
        self.count.append(count)
        return i

    def build(self) -> Tree:
        n = len(self.feature)
        thr = np.full(n, np.nan)
        for i, t in self.threshold.items():
            thr[i] = t
        left = np.full(n, -1, dtype=np.int64)
        right = np.full(n, -1, dtype=np.int64)
        for i, c in self.left.items():
            left[i] = c
        for i, c in self.right.items():
            right[i] = c
        val = np.full(n, np.nan)
        for i, v in self.value.items():
            val[i] = v
        return Tree(
            feature=np.asarray(self.feature, dtype=np.int64),
            threshold=thr,
            strict=self.strict,
            left=left,
            right=right,
            value=val,
            count=np.asarray(self.count, dtype=float),
            categories=dict(self.categories),
        )
