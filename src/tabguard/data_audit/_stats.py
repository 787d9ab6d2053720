"""Vectorised statistics shared by the descriptive (D2) and disparate-impact (D4) checks.

Everything here works on counts (``np.unique`` / ``np.bincount``) rather than per-row Python,
so a million rows cost one sort or one pass per column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def sample_positions(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a uniform sample of ``size`` out of ``n`` (all when ``n <= size``)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def auc_from_counts(scores: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC of a score that takes one value per group (ties count one half).

    Parameters
    ----------
    scores : ndarray of shape (k,)
        The score of each group.
    pos, neg : ndarray of shape (k,)
        Number of positive and negative rows in each group.

    Returns
    -------
    float
        P(score of a random positive > score of a random negative) + 0.5 P(tie); NaN when
        either class is absent.
    """
    order = np.argsort(scores, kind="stable")
    s, p, q = scores[order], pos[order].astype(float), neg[order].astype(float)
    # Merge groups with equal scores: their rows are ties to each other.
    _, start = np.unique(s, return_index=True)
    p = np.add.reduceat(p, start) if p.size else p
    q = np.add.reduceat(q, start) if q.size else q
    n_pos, n_neg = p.sum(), q.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    below = np.cumsum(q) - q
    return float((p * (below + 0.5 * q)).sum() / (n_pos * n_neg))


@dataclass(frozen=True)
class RankTest:
    """Mann-Whitney U test of a numeric feature between the label classes.

    Attributes
    ----------
    u : float
        U statistic of the positive class.
    auc : float
        ``u / (n_pos * n_neg)``: P(value of a positive > value of a negative).
    rank_biserial : float
        ``2 * auc - 1`` in [-1, 1]; positive when positives have larger values.
    z, p_value : float
        Normal approximation with tie and continuity correction (two-sided), as
        ``scipy.stats.mannwhitneyu(method="asymptotic")``.
    """

    u: float
    auc: float
    rank_biserial: float
    z: float
    p_value: float


@dataclass(frozen=True)
class Dense:
    """Dense value codes of a numeric array: one sort, reused by every rank statistic.

    Attributes
    ----------
    codes : ndarray of int
        Index of each row's value among the sorted distinct values; -1 for NaN.
    counts : ndarray of int
        Rows per distinct value.
    """

    codes: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Dense:
        """Sort ``x`` once (NaN values get code -1)."""
        ok = ~np.isnan(x)
        if ok.all():
            _, codes = np.unique(x, return_inverse=True)
        else:
            _, inv = np.unique(x[ok], return_inverse=True)
            codes = np.full(len(x), -1, dtype=np.int64)
            codes[ok] = inv
        codes = codes.astype(np.int64, copy=False).reshape(-1)
        counts = np.bincount(codes[codes >= 0], minlength=int(codes.max(initial=-1)) + 1)
        return cls(codes, counts)

    def mid_ranks(self) -> np.ndarray:
        """Average rank of each row (1-based, ties share their mean rank; NaN rows get the
        median rank, so they pull no correlation either way)."""
        cum = np.cumsum(self.counts)
        if cum.size == 0:
            return np.ones(len(self.codes))
        mid = cum - (self.counts - 1) / 2.0
        n_ok = float(cum[-1])
        return np.where(self.codes >= 0, mid[np.maximum(self.codes, 0)], (n_ok + 1) / 2)

    def quantile_codes(self, n_bins: int) -> np.ndarray:
        """Quantile bin of each row by mid-rank (ties stay together; NaN gets code n_bins)."""
        cum = np.cumsum(self.counts)
        if cum.size == 0:
            return np.full(len(self.codes), n_bins, dtype=np.int64)
        mid = (cum - self.counts / 2.0) / cum[-1]
        bin_of_value = np.minimum((mid * n_bins).astype(np.int64), n_bins - 1)
        return np.where(self.codes >= 0, bin_of_value[np.maximum(self.codes, 0)], n_bins)


def mann_whitney(x: np.ndarray, y: np.ndarray) -> RankTest:
    """Mann-Whitney U test of ``x`` between ``y == 1`` and ``y == 0`` (NaN values ignored).

    One sort and a ``bincount``; exact ties are handled.
    """
    return mann_whitney_dense(Dense.of(x), y)


def mann_whitney_dense(d: Dense, y: np.ndarray) -> RankTest:
    """:func:`mann_whitney` on values already sorted into :class:`Dense` codes (no sort)."""
    ok = d.codes >= 0
    codes = d.codes[ok]
    yy = y[ok]
    n_pos = int(yy.sum())
    n_neg = len(yy) - n_pos
    if n_pos == 0 or n_neg == 0:
        return RankTest(math.nan, math.nan, math.nan, math.nan, math.nan)
    tot = d.counts.astype(float)
    pos = np.bincount(codes, weights=yy, minlength=len(tot))
    neg = tot - pos
    below = np.cumsum(neg) - neg
    u = float((pos * (below + 0.5 * neg)).sum())
    n = n_pos + n_neg
    mu = n_pos * n_neg / 2
    tie = float((tot**3 - tot).sum())
    var = n_pos * n_neg / 12 * ((n + 1) - tie / (n * (n - 1)))
    if var <= 0:
        return RankTest(u, 0.5, 0.0, 0.0, 1.0)
    big = max(u, n_pos * n_neg - u)
    z = (big - mu - 0.5) / math.sqrt(var)
    p = float(min(1.0, 2 * stats.norm.sf(z)))
    auc = u / (n_pos * n_neg)
    return RankTest(u, auc, 2 * auc - 1, float(math.copysign(z, u - mu)), p)


def crossfit_rate_auc(
    codes: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, prior: float = 10.0
) -> float:
    """AUC of a group's positive rate as a score, fitted on one half and scored on the other.

    A category (or a bin of a numeric feature) predicts the label through the rate of its group;
    two-fold cross-fitting keeps high-cardinality columns (an id read as a category) from
    scoring a perfect in-sample AUC. Rates are shrunk towards the base rate with ``prior`` rows.

    Parameters
    ----------
    codes : ndarray of int
        Group code of each row, ``>= 0``.
    y : ndarray of {0, 1}
    rng : Generator
        Draws the folds.

    Returns
    -------
    float
        AUC in [0, 1]; NaN when a class is absent.
    """
    n = len(codes)
    if n < 4 or y.min() == y.max():
        return math.nan
    k = int(codes.max()) + 1
    fold = rng.integers(0, 2, size=n)
    key = fold * k + codes
    tot = np.bincount(key, minlength=2 * k).astype(float).reshape(2, k)
    pos = np.bincount(key, weights=y, minlength=2 * k).reshape(2, k)
    base = y.mean()
    # The score of a fold's group is the rate of the same group in the other fold.
    rate = (pos[::-1] + prior * base) / (tot[::-1] + prior)
    return auc_from_counts(rate.ravel(), pos.ravel(), (tot - pos).ravel())


def loo_label_information(tot: np.ndarray, pos: np.ndarray, prior: float = 10.0) -> float:
    """Share of the label's entropy a grouping of the rows explains, leave-one-out.

    Each row's label is predicted by its group's positive rate computed without the row,
    shrunk towards the base rate with ``prior`` rows; the share is one minus that prediction's
    log loss over the base rate's. Leaving the row out keeps groups of one row (a numeric
    value held once) from explaining anything, and needs only the counts per group.

    Parameters
    ----------
    tot, pos : ndarray
        Rows and positive rows per group (every row in exactly one group).
    prior : float
        Pseudo-rows at the base rate added to every group.

    Returns
    -------
    float
        At most 1 (the groups determine the label); about 0 or below when they tell nothing;
        NaN when a class is absent.
    """
    tot = np.asarray(tot, dtype=float)
    pos = np.asarray(pos, dtype=float)
    n, k = float(tot.sum()), float(pos.sum())
    if n < 2 or k <= 0 or k >= n:
        return math.nan
    b = k / n
    has = tot > 0
    tot, pos = tot[has], pos[has]
    neg = tot - pos
    eps = 1e-9
    rate_pos = (pos - 1 + prior * b) / (tot - 1 + prior)  # a positive row's, without it
    rate_neg = (pos + prior * b) / (tot - 1 + prior)  # a negative row's, without it
    loss = -(
        pos @ np.log(np.clip(rate_pos, eps, 1.0)) + neg @ np.log(np.clip(1.0 - rate_neg, eps, 1.0))
    )
    base = -(k * math.log(b) + (n - k) * math.log(1.0 - b))
    return float(1.0 - loss / base)


def quantile_codes(x: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin a numeric array by its quantiles (ties merge bins; NaN gets the last code).

    Returns
    -------
    codes : ndarray of int
    edges : ndarray of float
        Unique quantile edges (``len(edges) - 1`` bins for the finite values).
    """
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return np.zeros(len(x), dtype=np.int64), np.array([0.0, 0.0])
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    codes = np.searchsorted(edges[1:-1], x, side="right").astype(np.int64)
    codes[np.isnan(x)] = len(edges) - 1
    return codes, edges


def numeric_auc(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    """Direction-free AUC of one numeric feature alone for the label.

    The larger of the rank AUC (monotone relation, either direction) and the cross-fitted AUC
    of the positive rate of its 64 quantile bins (non-monotone relation, e.g. a value band).
    """
    return numeric_auc_dense(Dense.of(x), y, rng)


def numeric_auc_dense(
    d: Dense, y: np.ndarray, rng: np.random.Generator, rank_auc: float | None = None
) -> float:
    """:func:`numeric_auc` on :class:`Dense` codes; ``rank_auc`` (from
    :func:`mann_whitney_dense`) saves recomputing it."""
    auc = rank_auc if rank_auc is not None else mann_whitney_dense(d, y).auc
    mono = max(auc, 1 - auc) if not math.isnan(auc) else math.nan
    binned = crossfit_rate_auc(d.quantile_codes(64), y, rng)
    vals = [v for v in (mono, binned) if not math.isnan(v)]
    return max(vals) if vals else math.nan


def categorical_auc(codes: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    """Cross-fitted AUC of a category's positive rate (missing values as one more category)."""
    c = np.where(codes < 0, int(codes.max()) + 1, codes)
    return crossfit_rate_auc(c, y, rng)


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, ...]:
    """Wilson score interval of binomial proportions ``k / n`` (vectorised, NaN where n = 0)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def bh_adjust(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate); NaN entries stay NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def chi2_independence(table: np.ndarray) -> tuple[float, float, int, float]:
    """Chi-square test of independence of a contingency table and Cramér's V.

    Rows and columns without any count are dropped first. Returns ``(chi2, p, dof, v)``;
    NaN when fewer than two rows or columns remain.
    """
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return math.nan, math.nan, 0, math.nan
    res = stats.chi2_contingency(t, correction=False)
    chi2, p, dof = float(res.statistic), float(res.pvalue), int(res.dof)
    v = math.sqrt(chi2 / (t.sum() * (min(t.shape) - 1)))
    return chi2, p, dof, v


def skewness(x: np.ndarray) -> float:
    """Adjusted Fisher-Pearson sample skewness G1 (as ``pandas.Series.skew``); NaN ignored."""
    x = x[~np.isnan(x)]
    n = x.size
    if n < 3:
        return math.nan
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if m2 <= 1e-14 * max(1.0, float(np.mean(x * x))):
        return 0.0
    g1 = float(np.mean(d * d * d)) / m2**1.5
    return g1 * math.sqrt(n * (n - 1)) / (n - 2)
