"""D2 descriptive analysis: univariate, bivariate with the label, correlations, tests, plots.

Runs on the rows that satisfy the contract. Everything that is a count (percentiles, bins,
positive rates, chi-square tables) uses every valid row through ``np.bincount``; rank statistics
(Mann-Whitney tests, single-feature AUCs, the Spearman matrix) and the histograms use a uniform
sample of ``sample_size`` rows (200,000 by default), which keeps a million rows to a few seconds
while p-values and effect sizes stay far more precise than any decision needs. Each numeric
column of the sample is sorted once (:class:`~tabguard.data_audit._stats.Dense`) and that sort
serves the test, the AUC and the Spearman ranks.

This check describes, it does not accuse: it never marks rows as poisoning suspects. Its
findings are ``info`` except constant columns and near-deterministic relations to the label
("possible leakage"), which are warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd

from tabguard.checks import (
    POSITIVE,
    PROBABILITY_OPEN,
    SHARE,
    CheckOptions,
    at_least,
    interval,
    option,
)
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._columns import Column, prepare_columns
from tabguard.data_audit._matrix import ValueIds, numeric_value_ids
from tabguard.data_audit._stats import (
    Dense,
    bh_adjust,
    chi2_independence,
    crossfit_rate_auc,
    mann_whitney_dense,
    numeric_auc_dense,
    sample_positions,
    skewness,
)
from tabguard.reports import format_number

PERCENTILES = (1, 10, 50, 90, 99)
_DISCRETE_MAX = 20  # integer features with at most this many values get one bin per value


@dataclass(frozen=True)
class DescriptiveOptions(CheckOptions):
    """Settings of the descriptive check (``options={"descriptive": {...}}``)."""

    check: ClassVar[str] = "descriptive"

    sample_size: int = option(
        200_000,
        "rows sampled for rank statistics (tests of numeric features, AUCs, Spearman); far "
        "more precise than any decision needs, a few seconds at a million rows",
        at_least(100),
    )
    n_bins: int = option(
        10, "quantile bins of numeric features in the bivariate tables and plots", at_least(2)
    )
    alpha: float = option(
        0.05,
        "level of the association tests after Benjamini-Hochberg correction",
        PROBABILITY_OPEN,
    )
    redundant_rho: float = option(
        0.95, "|Spearman rho| above which two features are reported as redundant", SHARE
    )
    leakage_auc: float = option(
        0.95,
        "single-feature AUC above which a feature is a possible leak of the label",
        interval(0.5, 1.0),
    )
    skew: float = option(
        3.0, "|skewness| above which a numeric feature is reported as extremely skewed", POSITIVE
    )
    max_plot_features: int = option(
        40, "features that get plots (most associated with the label first)", at_least(0)
    )


@dataclass
class FeatureStats:
    """What the check learns about one feature."""

    count: int
    missing: int
    distinct: int
    top_share: float
    numeric: dict[str, float] | None = None
    top: list[tuple[str, int]] | None = None
    bin_labels: list[str] | None = None
    bin_rows: np.ndarray | None = None
    bin_pos: np.ndarray | None = None
    discrete: bool = False
    mw_p: float = math.nan
    rank_biserial: float = math.nan
    chi2: float = math.nan
    chi2_dof: int = 0
    chi2_p: float = math.nan
    cramers_v: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    auc: float = math.nan

    @property
    def effect(self) -> float:
        """The larger of |rank-biserial r| and Cramér's V (NaN when untested)."""
        vals = [abs(v) for v in (self.rank_biserial, self.cramers_v) if not math.isnan(v)]
        return max(vals) if vals else math.nan

    def effects_text(self) -> str:
        """E.g. ``r=+0.38, V=0.33``."""
        parts = []
        if not math.isnan(self.rank_biserial):
            parts.append(f"r={self.rank_biserial:+.2f}")
        if not math.isnan(self.cramers_v):
            parts.append(f"V={self.cramers_v:.2f}")
        return ", ".join(parts)


@dataclass
class DescriptiveResult:
    """Everything the findings and the report sections are made from."""

    cols: list[Column]
    st: dict[str, FeatureStats]
    rho: np.ndarray
    redundant: list[tuple[str, str, float]]
    y: np.ndarray  # label (0/1, float) of the valid rows
    sample: np.ndarray  # positions (among the valid rows) used for rank statistics and plots
    negative: str
    positive: str
    n_all: int
    population: PopulationStats | None = None

    @property
    def n(self) -> int:
        """Valid rows described."""
        return self.population.rows if self.population is not None else len(self.y)

    @property
    def base_rate(self) -> float:
        """Positive rate of the valid rows."""
        if self.population is not None:
            return self.population.positives / max(self.population.rows, 1)
        return float(self.y.mean())


# --------------------------------------------------------------------------------------------
# Per-feature statistics
# --------------------------------------------------------------------------------------------
def _interval_label(lo: float, hi: float, last: bool) -> str:
    a, b = format_number(lo, compact=True), format_number(hi, compact=True)
    return f"[{a}, {b}]" if last else f"[{a}, {b})"


def _quantile_bins(quantiles: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bin codes of ``x`` between the distinct ``quantiles`` (one bin when they all coincide)."""
    edges = np.unique(quantiles)
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    codes = np.searchsorted(edges[1:-1], x, side="right").astype(np.int64)
    nb = len(edges) - 1
    return codes, [_interval_label(edges[i], edges[i + 1], i == nb - 1) for i in range(nb)]


@dataclass(frozen=True)
class _Held:
    """The valid rows' values of a numeric column as ids (from the audit's hashing of the
    column, :func:`~tabguard.data_audit._matrix.numeric_value_ids`)."""

    codes: np.ndarray  # per row, the id of its value among ``values``; -1 when missing
    values: np.ndarray  # the distinct values the rows hold, ascending
    counts: np.ndarray  # rows per value

    @classmethod
    def of(cls, ids: ValueIds, rows: np.ndarray | None, count: int) -> _Held | None:
        """The ids of ``rows`` (None: every row), ``count`` of which hold a value; None
        where the rows' own values must be read instead: an infinite value (the ids leave it
        out; the contract's validation makes such rows invalid, so valid rows hold none).

        -0.0 and 0.0 are one id, as they were one value to ``value_counts``; a quantile
        that is zero may then be 0.0 where the partition of the rows gave -0.0 (or the
        reverse), which nothing shows: numbers print alike (``format_number``) and compare
        equal (bins)."""
        if count == 0:  # nothing to count (the statistics say so without the ids)
            return None
        codes = ids.codes if rows is None else ids.codes[rows]
        counts = (
            ids.counts
            if rows is None
            else np.bincount(codes[codes >= 0], minlength=len(ids.uniques))
        )
        if int(counts.sum()) != count:
            return None
        values = ids.uniques
        present = counts > 0
        if not present.all():  # values only rows outside ``rows`` hold
            new = np.cumsum(present) - 1
            codes = np.where(codes >= 0, new[np.maximum(codes, 0)], -1)
            values, counts = values[present], counts[present]
        return cls(codes, values, counts)


def percentiles_of_counts(values: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.percentile(data, q)`` (linear method) of the data holding ``counts[i]`` rows of
    ``values[i]`` (ascending, distinct, counts > 0), bit for bit: the same order statistics,
    found by the cumulative counts instead of a partition of the rows, and NumPy's own
    arithmetic for the virtual index, its neighbours and the interpolation."""
    qs = np.true_divide(np.asarray(q, dtype=float), 100)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    virtual = (n - 1) * qs
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1  # NumPy takes the last value (its index -1) for both
    previous[above] = -1
    following[above] = -1
    below = virtual < 0
    previous[below] = 0
    following[below] = 0
    gamma = np.asarray(virtual - previous, dtype=virtual.dtype)
    prev_i, next_i = previous.astype(np.intp), following.astype(np.intp)
    prev_i[prev_i < 0] += n
    next_i[next_i < 0] += n
    a = values[np.searchsorted(cum, prev_i, side="right")]
    b = values[np.searchsorted(cum, next_i, side="right")]
    diff_b_a = b - a
    out = np.add(a, diff_b_a * gamma)
    np.subtract(b, diff_b_a * (1 - gamma), out=out, where=gamma >= 0.5)
    return np.asarray(out, dtype=float)


def _numeric_stats(
    c: Column, y: np.ndarray, n_bins: int, held: _Held | None = None
) -> FeatureStats:
    """Statistics and bins of a numeric column; with ``held``, its values' ids, the counts,
    quantiles and bins are read from them (the same figures, without hashing, partitioning
    and searching the rows again)."""
    x = c.x if c.x is not None else np.empty(0)
    nan = np.isnan(x)
    finite = x[~nan] if nan.any() else x
    count, missing = int(finite.size), int(nan.sum())
    if count == 0:
        return FeatureStats(count, missing, 0, math.nan)
    deciles = np.linspace(0, 100, n_bins + 1)
    qs = [0, 0.5, *PERCENTILES, 99.5, 100, *deciles]
    if held is None:
        # One hashing pass gives the distinct values and the mode; one partition all quantiles.
        vc = pd.Series(finite).value_counts(sort=False)
        distinct, top = len(vc), int(vc.max())
        q = np.percentile(finite, qs)
    else:
        distinct, top = len(held.values), int(held.counts.max())
        q = percentiles_of_counts(held.values, held.counts, np.array(qs))
    numeric = {
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if count > 1 else math.nan,
        "min": float(q[0]),
        **{f"p{p}": float(v) for p, v in zip(PERCENTILES, q[2:7], strict=True)},
        "max": float(q[8]),
        "skew": skewness(finite),
        "p0.5": float(q[1]),
        "p99.5": float(q[7]),
    }
    values = None
    if distinct <= _DISCRETE_MAX:
        values = np.sort(vc.index.to_numpy(dtype=float)) if held is None else held.values
    integral = values is not None and bool(np.all(values == np.round(values)))
    if values is not None and integral:
        # One bin per value: repayment codes and the like read better as themselves.
        codes = (
            np.searchsorted(values, x).astype(np.int64)
            if held is None
            else held.codes.astype(np.int64)
        )
        labels = [format_number(v, compact=True) for v in values]
    elif held is None:
        codes, labels = _quantile_bins(q[9:], x)
    else:
        # each value's bin, then the rows' (a missing value's is replaced below)
        bins, labels = _quantile_bins(q[9:], held.values)
        codes = bins[held.codes]
    if missing:
        codes[nan] = len(labels)
        labels.append("missing")
    k = len(labels)
    rows_per = np.bincount(codes, minlength=k)[:k]
    pos_per = np.bincount(codes, weights=y, minlength=k)[:k]
    return FeatureStats(
        count,
        missing,
        distinct,
        float(top / count),
        numeric=numeric,
        bin_labels=labels,
        bin_rows=rows_per,
        bin_pos=pos_per,
        discrete=integral,
    )


def _categorical_stats(c: Column, y: np.ndarray) -> FeatureStats:
    codes = c.codes if c.codes is not None else np.empty(0, dtype=np.int64)
    labels = list(c.labels or [])
    missing = int((codes < 0).sum())
    k = len(labels)
    shifted = np.where(codes < 0, k, codes)
    rows_per = np.bincount(shifted, minlength=k + 1)
    pos_per = np.bincount(shifted, weights=y, minlength=k + 1)
    if not missing:
        rows_per, pos_per = rows_per[:k], pos_per[:k]
    else:
        labels.append("missing")
    count = len(codes) - missing
    present = rows_per[:k] > 0
    distinct = int(present.sum())
    order = np.argsort(-rows_per[:k], kind="stable")
    top = [(labels[i], int(rows_per[i])) for i in order if rows_per[i] > 0]
    top_share = top[0][1] / count if top and count else math.nan
    # Bivariate table and plots: categories in contract order, absent ones dropped.
    keep = np.flatnonzero(rows_per > 0)
    return FeatureStats(
        count,
        missing,
        distinct,
        top_share,
        top=top,
        bin_labels=[labels[i] for i in keep],
        bin_rows=rows_per[keep],
        bin_pos=pos_per[keep],
    )


def weighted_percentiles(values: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.percentile`` (linear) of the data holding ``counts[i]`` rows of ``values[i]``
    (ascending, counts > 0), without expanding it."""
    cum = np.cumsum(counts)
    h = (cum[-1] - 1) * np.asarray(q, dtype=float) / 100.0
    lo = np.floor(h).astype(np.int64)
    frac = h - lo
    a = values[np.searchsorted(cum, lo, side="right")]
    b = values[np.searchsorted(cum, np.minimum(lo + 1, cum[-1] - 1), side="right")]
    return np.asarray(a + frac * (b - a), dtype=float)


def numeric_stats_from_counts(
    values: np.ndarray,
    counts: np.ndarray,
    positives: np.ndarray,
    missing: int,
    missing_pos: float,
    n_bins: int,
) -> FeatureStats:
    """The :func:`_numeric_stats` of data counted elsewhere (the Spark engine): per distinct
    value (ascending) its rows and positive labels, and the missing values' rows and positives.
    The same statistics, bins and labels as from the rows themselves."""
    keep = counts > 0
    v, w, pos = values[keep].astype(float), counts[keep].astype(np.int64), positives[keep]
    count = int(w.sum())
    if count == 0:
        return FeatureStats(0, missing, 0, math.nan)
    deciles = np.linspace(0, 100, n_bins + 1)
    q = weighted_percentiles(v, w, np.array([0, 0.5, *PERCENTILES, 99.5, 100, *deciles]))
    mean = float(np.dot(w, v) / count)
    d = v - mean
    m2 = float(np.dot(w, d * d) / count)
    skew = math.nan
    if count >= 3:
        skew = 0.0
        if m2 > 1e-14 * max(1.0, float(np.dot(w, v * v) / count)):
            g1 = float(np.dot(w, d * d * d) / count) / m2**1.5
            skew = g1 * math.sqrt(count * (count - 1)) / (count - 2)
    numeric = {
        "mean": mean,
        "std": math.sqrt(m2 * count / (count - 1)) if count > 1 else math.nan,
        "min": float(q[0]),
        **{f"p{p}": float(x) for p, x in zip(PERCENTILES, q[2:7], strict=True)},
        "max": float(q[8]),
        "skew": skew,
        "p0.5": float(q[1]),
        "p99.5": float(q[7]),
    }
    integral = len(v) <= _DISCRETE_MAX and bool(np.all(v == np.round(v)))
    if integral:
        codes = np.arange(len(v))
        labels = [format_number(x, compact=True) for x in v]
    else:
        codes, labels = _quantile_bins(q[9:], v)
    k = len(labels)
    rows_per = np.bincount(codes, weights=w, minlength=k)[:k].astype(np.int64)
    pos_per = np.bincount(codes, weights=pos, minlength=k)[:k]
    if missing:
        labels.append("missing")
        rows_per = np.append(rows_per, missing)
        pos_per = np.append(pos_per, missing_pos)
    return FeatureStats(
        count,
        missing,
        len(v),
        float(w.max() / count),
        numeric=numeric,
        bin_labels=labels,
        bin_rows=rows_per,
        bin_pos=pos_per,
        discrete=integral,
    )


def categorical_stats_from_counts(
    labels: list[str], counts: np.ndarray, positives: np.ndarray, missing: int, missing_pos: float
) -> FeatureStats:
    """The :func:`_categorical_stats` of data counted elsewhere: per category (in the order
    the rows' codes would follow) its rows and positives, and the missing values'."""
    k = len(labels)
    rows_per = np.asarray(counts, dtype=np.int64)
    pos_per = np.asarray(positives, dtype=float)
    labels = list(labels)
    if missing:
        rows_per = np.append(rows_per, missing)
        pos_per = np.append(pos_per, missing_pos)
        labels.append("missing")
    count = int(rows_per[:k].sum())
    present = rows_per[:k] > 0
    order = np.argsort(-rows_per[:k], kind="stable")
    top = [(labels[i], int(rows_per[i])) for i in order if rows_per[i] > 0]
    keep = np.flatnonzero(rows_per > 0)
    return FeatureStats(
        count,
        missing,
        int(present.sum()),
        top[0][1] / count if top and count else math.nan,
        top=top,
        bin_labels=[labels[i] for i in keep],
        bin_rows=rows_per[keep],
        bin_pos=pos_per[keep],
    )


@dataclass
class PopulationStats:
    """The descriptive statistics of data larger than the rows the audit holds, counted by
    another engine (the Spark engine, ``ctx.cache["descriptive_population"]``).

    The check then reports these counts (every valid row: counts, missing values, category
    frequencies, quantiles, the bivariate tables and their chi-square tests) and computes its
    rank statistics (Mann-Whitney tests, AUCs, Spearman) on the held rows marked ``uniform``,
    a uniform sample of the data.

    Attributes
    ----------
    rows : int
        Valid rows of the data.
    positives : int
        Their positive labels.
    n_all : int
        Rows of the data.
    stats : dict of str to FeatureStats
        Per contract feature, the statistics of every valid row.
    uniform : ndarray of bool
        Per held row, whether it belongs to the uniform sample.
    uniform_text : str
        What the rank statistics' rows are, for the report.
    """

    rows: int
    positives: int
    n_all: int
    stats: dict[str, FeatureStats]
    uniform: np.ndarray
    uniform_text: str = "a uniform sample"


def _test(
    c: Column, st: FeatureStats, y_s: np.ndarray, dense: Dense, rng: np.random.Generator
) -> None:
    """Association of one feature with the label, its effect sizes and its AUC alone.

    Every feature gets a chi-square test of its categories / values / quantile bins against the
    label (any shape of relation, e.g. the U-shaped default rate by age). Numeric features also
    get a Mann-Whitney test (a monotone shift, with the direction in the rank-biserial r); their
    p-value is the Bonferroni-combined minimum of the two.
    """
    if st.count == 0 or st.distinct < 2 or st.bin_rows is None or st.bin_pos is None:
        return
    table = np.column_stack([st.bin_rows - st.bin_pos, st.bin_pos])
    st.chi2, st.chi2_p, st.chi2_dof, st.cramers_v = chi2_independence(table)
    if c.kind == "numeric":
        rt = mann_whitney_dense(dense, y_s)
        st.mw_p, st.rank_biserial = rt.p_value, rt.rank_biserial
        ps = [p for p in (st.mw_p, st.chi2_p) if not math.isnan(p)]
        st.p_value = min(1.0, len(ps) * min(ps)) if ps else math.nan
        st.auc = numeric_auc_dense(dense, y_s, rng, rank_auc=rt.auc)
    else:
        st.p_value = st.chi2_p
        st.auc = crossfit_rate_auc(dense.codes, y_s, rng)


def held_ids(ctx: AuditContext, c: Column, rows: np.ndarray | None) -> _Held | None:
    """The value ids of a numeric column on ``rows`` (None: every row), read from the
    audit's one hashing of the column, which the trigger scan's matrix shares (the
    descriptive and bias checks read them)."""
    if c.kind != "numeric" or c.x is None or c.name not in ctx.validation.numeric:
        return None
    count = int(c.x.size - np.count_nonzero(np.isnan(c.x)))
    return _Held.of(numeric_value_ids(ctx, c.name), rows, count)


def sample_dense(c: Column, s: np.ndarray, held: _Held | None = None) -> Dense:
    """Sorted codes of the sampled rows: one sort per numeric column (none with ``held``: the
    ranks of the values' ids among those the sample holds), none for categories."""
    if c.kind == "numeric" and held is not None:
        ids = held.codes[s]
        present = np.bincount(ids[ids >= 0], minlength=len(held.values)) > 0
        dense = (np.cumsum(present) - 1)[np.maximum(ids, 0)]
        codes = np.where(ids >= 0, dense, -1).astype(np.int64)
        return Dense(codes, np.bincount(codes[codes >= 0], minlength=int(present.sum())))
    if c.kind == "numeric" and c.x is not None:
        return Dense.of(c.x[s])
    codes = c.codes[s] if c.codes is not None else np.zeros(len(s), dtype=np.int64)
    # Missing values as one more category (last), so they take part in ranks and AUCs.
    codes = np.where(codes < 0, len(c.labels or []), codes).astype(np.int64)
    return Dense(codes, np.bincount(codes, minlength=len(c.labels or []) + 1))


# --------------------------------------------------------------------------------------------
# Correlations
# --------------------------------------------------------------------------------------------
def _spearman(dense: list[Dense]) -> np.ndarray:
    """Spearman matrix from the sampled mid-ranks (numeric missing values at the median rank;
    categories by their index in the contract, missing values last)."""
    ranks = np.column_stack([d.mid_ranks() for d in dense])
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(ranks, rowvar=False)
    return np.atleast_2d(rho)


@register_check
class DescriptiveCheck:
    """Univariate and bivariate description of the valid rows, with tests and plots (D2)."""

    name: ClassVar[str] = "descriptive"
    order: ClassVar[int] = 20
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    reads_matrix: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = DescriptiveOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Describe every contract feature on the rows that satisfy the contract; the wording
        is ``_descriptive_report``'s."""
        from tabguard.data_audit._descriptive_report import (
            descriptive_findings,
            descriptive_sections,
            nothing_to_describe,
        )

        opts = ctx.opts(DescriptiveOptions)
        res = CheckResult()
        pop: PopulationStats | None = ctx.cache.get("descriptive_population")
        # counted elsewhere: the rank statistics on the held rows of the uniform sample
        rows = np.flatnonzero(ctx.valid if pop is None else ctx.valid & pop.uniform)
        label = ctx.contract.label
        positive = f"{label.column}={label.positive}"
        negative = (
            f"{label.column}={label.negative}"
            if label.negative is not None
            else f"{label.column}≠{label.positive}"
        )
        if rows.size < 2:
            res.sections.append(nothing_to_describe(int(rows.size)))
            res.summary = {"rows": int(rows.size)}
            return res
        y = ctx.y[rows].astype(np.int64)
        yf = y.astype(float)
        base_rate = float(yf.mean()) if pop is None else pop.positives / max(pop.rows, 1)
        rng = np.random.default_rng(ctx.random_state)
        s = sample_positions(rows.size, opts.sample_size, rng)
        y_s = y[s]
        cols = prepare_columns(ctx, rows)
        st: dict[str, FeatureStats] = {}
        dense: dict[str, Dense] = {}
        every = rows.size == ctx.n_rows  # (then ``rows`` is every position, in order)
        with ctx.progress.stage("descriptive analysis", total=len(cols) + 1) as stage:
            for c in cols:
                held = held_ids(ctx, c, None if every else rows) if pop is None else None
                if pop is not None and c.name in pop.stats:
                    st[c.name] = replace(pop.stats[c.name])  # (tests write into it)
                elif c.kind == "numeric":
                    st[c.name] = _numeric_stats(c, yf, opts.n_bins, held)
                else:
                    st[c.name] = _categorical_stats(c, yf)
                dense[c.name] = sample_dense(c, s, held)
                _test(c, st[c.name], y_s, dense[c.name], rng)
                stage.advance()
            adjusted = bh_adjust(np.array([st[c.name].p_value for c in cols]))
            for c, p in zip(cols, adjusted, strict=True):
                st[c.name].p_adjusted = float(p)
            rho = _spearman([dense[c.name] for c in cols]) if len(cols) > 1 else np.ones((1, 1))
            stage.advance()
        names = [c.name for c in cols]
        redundant = [
            (names[i], names[j], float(rho[i, j]))
            for i in range(len(cols))
            for j in range(i + 1, len(cols))
            if abs(rho[i, j]) > opts.redundant_rho
        ]
        a = DescriptiveResult(
            cols,
            st,
            rho,
            redundant,
            yf,
            s,
            negative,
            positive,
            ctx.n_rows if pop is None else pop.n_all,
            pop,
        )
        res.findings = descriptive_findings(a, opts)
        res.sections = descriptive_sections(a, opts)
        res.summary = {
            "rows": a.n,
            "sampled_rows": len(s),
            "base_rate": base_rate,
            "associated": [c.name for c in cols if st[c.name].p_adjusted < opts.alpha],
            "redundant_pairs": [[a, b, round(r, 4)] for a, b, r in redundant],
            "auc": {c.name: st[c.name].auc for c in cols},
        }
        return res
