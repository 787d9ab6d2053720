"""Feature columns of the valid rows, prepared once for the descriptive and bias checks.

Numeric and boolean features come from the contract validation's numeric view (already parsed);
categories are factorised with ``pandas.factorize`` (hashing, no per-row Python) and their codes
put in the contract's category order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tabguard.contract import FeatureSpec
from tabguard.contract._validate import _canon, _canon_lenient, text_codes
from tabguard.data_audit._base import AuditContext


@dataclass
class Column:
    """One column of the valid rows, ready for vectorised statistics.

    Attributes
    ----------
    name : str
    spec : FeatureSpec or None
        The contract's declaration (None for a column the contract does not name).
    kind : {"numeric", "categorical"}
    x : ndarray of float, optional
        Values of a numeric column (NaN when missing).
    codes : ndarray of int, optional
        Category index of a categorical column, ``-1`` when missing.
    labels : list of str, optional
        Text of each category index.
    """

    name: str
    spec: FeatureSpec | None
    kind: Literal["numeric", "categorical"]
    x: np.ndarray | None = None
    codes: np.ndarray | None = None
    labels: list[str] | None = None

    @property
    def role(self) -> str:
        """``protected``, ``gameable``, ``feature`` or ``undeclared``."""
        if self.spec is None:
            return "undeclared"
        if self.spec.protected:
            return "protected"
        return "gameable" if self.spec.gameable else "feature"

    def group_codes(self, max_groups: int = 10) -> tuple[np.ndarray, list[str]]:
        """Codes ``>= 0`` of every row, missing values as a group of their own.

        Numeric columns with more than ``max_groups`` values are cut at the contract's
        ``bins`` when declared, else at quintiles.
        """
        if self.kind == "categorical" and self.codes is not None:
            labels = list(self.labels or [])
            codes = self.codes
        else:
            x = self.x if self.x is not None else np.empty(0)
            finite = np.unique(x[~np.isnan(x)])
            if finite.size <= max_groups:
                codes = np.searchsorted(finite, x).astype(np.int64)
                labels = [_num_label(v) for v in finite]
            else:
                edges = (
                    np.asarray(self.spec.bins, dtype=float)
                    if self.spec is not None and self.spec.bins
                    else np.unique(np.quantile(finite, np.linspace(0, 1, 6)))
                )
                codes = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
                labels = [
                    f"[{_num_label(edges[i])}, {_num_label(edges[i + 1])})"
                    for i in range(len(edges) - 1)
                ]
            codes = np.where(np.isnan(x), -1, codes)
        if (codes < 0).any():
            codes = np.where(codes < 0, len(labels), codes)
            labels = [*labels, "missing"]
        return codes.astype(np.int64), labels


def _num_label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def prepare_columns(
    ctx: AuditContext, rows: np.ndarray, names: list[str] | None = None
) -> list[Column]:
    """Prepare the contract's features (or ``names`` among them) on the given rows.

    Columns are cached in ``ctx.cache`` for the rows they were prepared on (the descriptive
    and bias checks both read the valid rows' columns); treat them as read-only.
    """
    lock = ctx.cache.setdefault("columns_lock", threading.Lock())  # setdefault is atomic
    with lock:
        held = ctx.cache.get("columns")
        if held is None or not np.array_equal(held[0], rows):
            held = ctx.cache["columns"] = (rows, {})
        cache: dict[str, Column] = held[1]
        out: list[Column] = []
        for name, spec in ctx.contract.items():
            if names is not None and name not in names:
                continue
            if name not in cache:
                cache[name] = _prepare(ctx, name, spec, rows)
            out.append(cache[name])
        return out


def _prepare(ctx: AuditContext, name: str, spec: FeatureSpec, rows: np.ndarray) -> Column:
    num = ctx.validation.numeric
    # every row (the rows are positions, ascending): the columns as they are, not copies
    every = len(rows) == ctx.n_rows
    if spec.type == "boolean":
        x = num[name].to_numpy(dtype=float)
        x = x if every else x[rows]
        codes = np.where(np.isnan(x), -1, x).astype(np.int64)
        return Column(name, spec, "categorical", codes=codes, labels=["false", "true"])
    if spec.type == "category":
        col = ctx.data[name]
        return prepare_category(name, spec, col if every else col.iloc[rows])
    x = num[name].to_numpy(dtype=float)
    return Column(name, spec, "numeric", x=x if every else x[rows])


def prepare_category(name: str, spec: FeatureSpec | None, col: pd.Series) -> Column:
    """Factorise a category column; codes follow the contract's category order, else the
    sorted order of the values."""
    raw_codes, uniques = pd.factorize(col, use_na_sentinel=True)
    cats = list(spec.categories or []) if spec is not None else []
    order = {_canon(c): i for i, c in enumerate(cats)}
    big = len(order)
    by_value = sorted(range(len(uniques)), key=lambda j: (str(type(uniques[j])), uniques[j]))
    rank = {j: r for r, j in enumerate(by_value)}
    text = text_codes(cats)
    position = [order.get(_canon_lenient(u, text), big + rank[j]) for j, u in enumerate(uniques)]
    # Values that are the same category (1, 1.0 and "1" for the category 1) share one code.
    kept, remap = np.unique(np.asarray(position, dtype=np.int64), return_inverse=True)
    first = {p: j for j, p in reversed(list(enumerate(position)))}
    labels = [str(cats[p]) if p < big else str(uniques[first[int(p)]]) for p in kept]
    codes = np.where(raw_codes >= 0, remap.reshape(-1)[np.maximum(raw_codes, 0)], -1)
    return Column(name, spec, "categorical", codes=codes, labels=labels)


def prepare_undeclared(name: str, col: pd.Series, max_categories: int = 50) -> Column:
    """Prepare a column the contract does not name: numeric when it parses as numbers with
    many values, else categorical."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        x = col.to_numpy(dtype=float, na_value=np.nan)
        if pd.Series(x).nunique() > max_categories:
            return Column(name, None, "numeric", x=x)
    return prepare_category(name, None, col)
