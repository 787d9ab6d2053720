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
from dataclasses import dataclass
from typing import Any, ClassVar

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
from tabguard.data_audit._stats import (
    Dense,
    bh_adjust,
    chi2_independence,
    crossfit_rate_auc,
    mann_whitney_dense,
    numeric_auc_dense,
    sample_positions,
    skewness,
    wilson_interval,
)
from tabguard.reports import Finding, PlotSpec, Section, Table, format_number

PERCENTILES = (1, 10, 50, 90, 99)
_DISCRETE_MAX = 20  # integer features with at most this many values get one bin per value
_TOP_CATEGORIES = 20  # categories shown in plots and tables; the rest are pooled


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
class _Stats:
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
class _Analysis:
    """Everything the findings and the report sections are made from."""

    cols: list[Column]
    st: dict[str, _Stats]
    rho: np.ndarray
    redundant: list[tuple[str, str, float]]
    y: np.ndarray  # label (0/1, float) of the valid rows
    sample: np.ndarray  # positions (among the valid rows) used for rank statistics and plots
    negative: str
    positive: str
    n_all: int

    @property
    def n(self) -> int:
        """Valid rows described."""
        return len(self.y)

    @property
    def base_rate(self) -> float:
        """Positive rate of the valid rows."""
        return float(self.y.mean())


# --------------------------------------------------------------------------------------------
# Per-feature statistics
# --------------------------------------------------------------------------------------------
def _interval_label(lo: float, hi: float, last: bool) -> str:
    a, b = format_number(lo, compact=True), format_number(hi, compact=True)
    return f"[{a}, {b}]" if last else f"[{a}, {b})"


def _numeric_stats(c: Column, y: np.ndarray, n_bins: int) -> _Stats:
    x = c.x if c.x is not None else np.empty(0)
    nan = np.isnan(x)
    finite = x[~nan] if nan.any() else x
    count, missing = int(finite.size), int(nan.sum())
    if count == 0:
        return _Stats(count, missing, 0, math.nan)
    # One hashing pass gives the distinct values and the mode; one partition all quantiles.
    vc = pd.Series(finite).value_counts(sort=False)
    distinct = len(vc)
    deciles = np.linspace(0, 100, n_bins + 1)
    q = np.percentile(finite, [0, 0.5, *PERCENTILES, 99.5, 100, *deciles])
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
    values = np.sort(vc.index.to_numpy(dtype=float)) if distinct <= _DISCRETE_MAX else None
    integral = values is not None and bool(np.all(values == np.round(values)))
    if values is not None and integral:
        # One bin per value: repayment codes and the like read better as themselves.
        codes = np.searchsorted(values, x).astype(np.int64)
        labels = [format_number(v, compact=True) for v in values]
    else:
        edges = np.unique(q[9:])
        if edges.size == 1:
            edges = np.array([edges[0], edges[0]])
        codes = np.searchsorted(edges[1:-1], x, side="right").astype(np.int64)
        nb = len(edges) - 1
        labels = [_interval_label(edges[i], edges[i + 1], i == nb - 1) for i in range(nb)]
    if missing:
        codes[nan] = len(labels)
        labels.append("missing")
    k = len(labels)
    rows_per = np.bincount(codes, minlength=k)[:k]
    pos_per = np.bincount(codes, weights=y, minlength=k)[:k]
    return _Stats(
        count,
        missing,
        distinct,
        float(vc.max() / count),
        numeric=numeric,
        bin_labels=labels,
        bin_rows=rows_per,
        bin_pos=pos_per,
        discrete=integral,
    )


def _categorical_stats(c: Column, y: np.ndarray) -> _Stats:
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
    return _Stats(
        count,
        missing,
        distinct,
        top_share,
        top=top,
        bin_labels=[labels[i] for i in keep],
        bin_rows=rows_per[keep],
        bin_pos=pos_per[keep],
    )


def _test(c: Column, st: _Stats, y_s: np.ndarray, dense: Dense, rng: np.random.Generator) -> None:
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


def _dense(c: Column, s: np.ndarray) -> Dense:
    """Sorted codes of the sampled rows: one sort per numeric column, none for categories."""
    if c.kind == "numeric" and c.x is not None:
        return Dense.of(c.x[s])
    codes = c.codes[s] if c.codes is not None else np.zeros(len(s), dtype=np.int64)
    # Missing values as one more category (last), so they take part in ranks and AUCs.
    codes = np.where(codes < 0, len(c.labels or []), codes).astype(np.int64)
    return Dense(codes, np.bincount(codes, minlength=len(c.labels or []) + 1))


def _strength(effect: float) -> str:
    a = abs(effect)
    if math.isnan(a):
        return "n/a"
    return "large" if a >= 0.5 else "medium" if a >= 0.3 else "small" if a >= 0.1 else "negligible"


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


# --------------------------------------------------------------------------------------------
# Plots (data only; tabguard.reports draws them)
# --------------------------------------------------------------------------------------------
def _hist_plot(c: Column, st: _Stats, a: _Analysis, skew_limit: float) -> PlotSpec | None:
    """Distribution of a feature in each class (numeric: histogram of the sampled rows;
    categorical: share of each class per category, all rows)."""
    names = (a.negative, a.positive)
    if st.count == 0 or st.distinct < 1:
        return None
    if c.kind == "categorical" and st.bin_labels is not None and st.bin_rows is not None:
        labels, rows_per, pos_per = _top_bins(st)
        neg = rows_per - pos_per
        return PlotSpec(
            kind="bar",
            title=f"{c.name}: share of each class by category",
            data={
                "labels": labels,
                "series": {
                    names[0]: (neg / max(neg.sum(), 1)).tolist(),
                    names[1]: (pos_per / max(pos_per.sum(), 1)).tolist(),
                },
                "ylabel": "share of the class",
            },
        )
    x = c.x[a.sample] if c.x is not None else np.empty(0)
    y = a.y[a.sample]
    num = st.numeric or {}
    lo, hi = num.get("p0.5", math.nan), num.get("p99.5", math.nan)
    if not hi > lo:
        lo, hi = num.get("min", math.nan), num.get("max", math.nan)
    if not hi > lo:
        return None
    log_scale = False
    first = max(float(np.min(x[x > 0])) if (x > 0).any() else 1.0, hi / 1e6)
    if c.spec is not None and c.spec.type == "integer" and hi - lo <= 40:
        edges = np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.0)
    elif lo >= 0 and abs(num.get("skew", 0.0)) > skew_limit and hi > first:
        # Long right tail of non-negative amounts: log-spaced bins show the body and the tail.
        edges = np.concatenate([[0.0], np.geomspace(first, hi, 30)])
        log_scale = True
    else:
        edges = np.linspace(lo, hi, 31)
    ok = ~np.isnan(x)
    idx = np.clip(np.searchsorted(edges, x[ok], side="right") - 1, 0, len(edges) - 2)
    yy = y[ok]
    total = np.bincount(idx, minlength=len(edges) - 1)
    pos = np.bincount(idx, weights=yy, minlength=len(edges) - 1)
    clipped = edges[0] > num.get("min", edges[0]) or edges[-1] < num.get("max", edges[-1])
    return PlotSpec(
        kind="hist",
        title=f"{c.name}: distribution by class",
        data={
            "edges": edges.tolist(),
            "series": {names[0]: (total - pos).tolist(), names[1]: pos.tolist()},
            "density": True,
            "xlabel": c.name + (" (symmetric log scale)" if log_scale else ""),
            **({"xscale": "symlog", "linthresh": float(edges[1])} if log_scale else {}),
        },
        caption="Each class normalised to its own total"
        + (f" (a uniform sample of {len(a.sample):,} rows)" if len(a.sample) < a.n else "")
        + ". "
        + ("Values beyond p0.5-p99.5 are counted in the end bins." if clipped else ""),
    )


def _top_bins(st: _Stats) -> tuple[list[str], np.ndarray, np.ndarray]:
    labels = list(st.bin_labels or [])
    rows_per = np.asarray(st.bin_rows, dtype=float)
    pos_per = np.asarray(st.bin_pos, dtype=float)
    if len(labels) <= _TOP_CATEGORIES:
        return labels, rows_per, pos_per
    keep = np.sort(np.argsort(-rows_per, kind="stable")[: _TOP_CATEGORIES - 1])
    rest = np.setdiff1d(np.arange(len(labels)), keep)
    return (
        [labels[i] for i in keep] + [f"{len(rest)} others"],
        np.append(rows_per[keep], rows_per[rest].sum()),
        np.append(pos_per[keep], pos_per[rest].sum()),
    )


def _rate_plot(c: Column, st: _Stats, base_rate: float, positive: str) -> PlotSpec | None:
    if st.bin_labels is None or st.bin_rows is None or st.bin_pos is None:
        return None
    labels, rows_per, pos_per = _top_bins(st)
    low, high = wilson_interval(pos_per, rows_per)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = pos_per / rows_per
    how = "category" if c.kind == "categorical" else "value" if st.discrete else "quantile bin"
    return PlotSpec(
        kind="rate",
        title=f"{c.name}: rate of {positive} by {how}",
        data={
            "labels": labels,
            "counts": rows_per.tolist(),
            "rates": rate.tolist(),
            "low": low.tolist(),
            "high": high.tolist(),
            "base_rate": base_rate,
            "xlabel": c.name,
            "ylabel": f"rate of {positive}",
        },
        caption="Bars: rows (left axis). Points: rate with 95% Wilson interval (right axis); "
        "dashed: overall rate.",
    )


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------
@register_check
class DescriptiveCheck:
    """Univariate and bivariate description of the valid rows, with tests and plots (D2)."""

    name: ClassVar[str] = "descriptive"
    order: ClassVar[int] = 20
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = DescriptiveOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Describe every contract feature on the rows that satisfy the contract."""
        opts = ctx.opts(DescriptiveOptions)
        res = CheckResult()
        rows = np.flatnonzero(ctx.valid)
        label = ctx.contract.label
        positive = f"{label.column}={label.positive}"
        negative = (
            f"{label.column}={label.negative}"
            if label.negative is not None
            else f"{label.column}≠{label.positive}"
        )
        if rows.size < 2:
            res.sections.append(
                Section(
                    title="Descriptive analysis (D2)",
                    check=self.name,
                    text=[f"Only {rows.size} row(s) satisfy the contract: nothing to describe."],
                )
            )
            res.summary = {"rows": int(rows.size)}
            return res
        y = ctx.y[rows].astype(np.int64)
        yf = y.astype(float)
        base_rate = float(yf.mean())
        rng = np.random.default_rng(ctx.random_state)
        s = sample_positions(rows.size, opts.sample_size, rng)
        y_s = y[s]
        cols = prepare_columns(ctx, rows)
        st: dict[str, _Stats] = {}
        dense: dict[str, Dense] = {}
        with ctx.progress.stage("descriptive analysis", total=len(cols) + 1) as stage:
            for c in cols:
                st[c.name] = (
                    _numeric_stats(c, yf, opts.n_bins)
                    if c.kind == "numeric"
                    else _categorical_stats(c, yf)
                )
                dense[c.name] = _dense(c, s)
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
        a = _Analysis(cols, st, rho, redundant, yf, s, negative, positive, ctx.n_rows)
        res.findings = _findings(self.name, a, opts)
        res.sections = _sections(self.name, a, opts)
        res.summary = {
            "rows": int(rows.size),
            "sampled_rows": len(s),
            "base_rate": base_rate,
            "associated": [c.name for c in cols if st[c.name].p_adjusted < opts.alpha],
            "redundant_pairs": [[a, b, round(r, 4)] for a, b, r in redundant],
            "auc": {c.name: st[c.name].auc for c in cols},
        }
        return res


def _findings(check: str, a: _Analysis, opts: DescriptiveOptions) -> list[Finding]:
    cols, st, redundant, n = a.cols, a.st, a.redundant, a.n
    out: list[Finding] = []
    for c in cols:
        s = st[c.name]
        if s.count > 0 and s.distinct <= 1:
            value = s.top[0][0] if s.top else format_number((s.numeric or {}).get("min"))
            out.append(
                Finding(
                    check=check,
                    severity="warning",
                    message=f"{c.name} is constant ({value} on all {s.count} rows with a "
                    "value): it carries no information.",
                    features=[c.name],
                    evidence={"distinct": s.distinct, "count": s.count},
                    recommendation="Check the source (a broken extract often looks like this) "
                    "or drop the feature from the contract.",
                )
            )
        if s.auc > opts.leakage_auc:
            out.append(
                Finding(
                    check=check,
                    severity="warning",
                    message=f"Possible leakage: {c.name} alone predicts the label with AUC "
                    f"{s.auc:.3f} (> {opts.leakage_auc}); a near-deterministic relation usually "
                    "means the feature is known only after the outcome, or encodes it.",
                    features=[c.name],
                    evidence={
                        "auc": s.auc,
                        "p_adjusted": s.p_adjusted,
                        "rank_biserial": s.rank_biserial,
                        "cramers_v": s.cramers_v,
                    },
                    recommendation="Confirm the value is available at decision time and is not "
                    "derived from the label; remove it from the contract otherwise.",
                )
            )
    tested = [c for c in cols if not math.isnan(st[c.name].p_adjusted)]
    ranked = sorted(tested, key=lambda c: -st[c.name].auc if not math.isnan(st[c.name].auc) else 0)
    strong = [c for c in ranked if st[c.name].p_adjusted < opts.alpha][:5]
    if strong:
        out.append(
            Finding(
                check=check,
                severity="info",
                message=f"{len([c for c in tested if st[c.name].p_adjusted < opts.alpha])} of "
                f"{len(tested)} features are associated with the label (BH-adjusted p < "
                f"{opts.alpha}); strongest: "
                + ", ".join(
                    f"{c.name} (AUC {st[c.name].auc:.2f}, {st[c.name].effects_text()})"
                    for c in strong
                )
                + ".",
                features=[c.name for c in strong],
                evidence={
                    c.name: {"auc": st[c.name].auc, "p_adjusted": st[c.name].p_adjusted}
                    for c in strong
                },
            )
        )
    none = [c.name for c in tested if st[c.name].p_adjusted >= opts.alpha]
    if none:
        out.append(
            Finding(
                check=check,
                severity="info",
                message=f"No detectable association with the label (BH-adjusted p >= "
                f"{opts.alpha} on {n} rows): {', '.join(none)}.",
                features=none,
                evidence={k: st[k].p_adjusted for k in none},
                recommendation="Such features add variance and attack surface without signal; "
                "consider dropping them.",
            )
        )
    skewed = [
        (c.name, (st[c.name].numeric or {}).get("skew", math.nan))
        for c in cols
        if c.kind == "numeric" and abs((st[c.name].numeric or {}).get("skew", 0.0)) > opts.skew
    ]
    if skewed:
        out.append(
            Finding(
                check=check,
                severity="info",
                message=f"Extreme skew (|skewness| > {opts.skew:g}): "
                + ", ".join(f"{k} ({v:.1f})" for k, v in skewed)
                + ". A few extreme values dominate these features.",
                features=[k for k, _ in skewed],
                evidence=dict(skewed),
                recommendation="Declare a clip range or coarse bins in the contract; extreme "
                "values are also where gamed inputs hide.",
            )
        )
    near_constant = [
        c.name
        for c in cols
        if st[c.name].distinct > 1 and st[c.name].top_share >= 0.99 and st[c.name].count > 0
    ]
    if near_constant:
        out.append(
            Finding(
                check=check,
                severity="info",
                message="Nearly constant (one value on >= 99% of rows): "
                + ", ".join(f"{k} ({st[k].top_share:.1%})" for k in near_constant)
                + ".",
                features=near_constant,
                evidence={k: st[k].top_share for k in near_constant},
            )
        )
    if redundant:
        feats = sorted({a for a, _, _ in redundant} | {b for _, b, _ in redundant})
        out.append(
            Finding(
                check=check,
                severity="info",
                message=f"{len(redundant)} redundant pair(s) (|Spearman rho| > "
                f"{opts.redundant_rho}): "
                + ", ".join(f"{a}~{b} ({r:+.3f})" for a, b, r in redundant[:8])
                + (" …" if len(redundant) > 8 else "")
                + ".",
                features=feats,
                evidence={"pairs": [[a, b, r] for a, b, r in redundant]},
                recommendation="Redundant features split importance between them and widen "
                "the attack surface; keep one or combine them.",
            )
        )
    missing = [
        (c.name, st[c.name].missing / n) for c in cols if st[c.name].missing / max(n, 1) >= 0.2
    ]
    if missing:
        out.append(
            Finding(
                check=check,
                severity="info",
                message="Often missing (>= 20% of valid rows): "
                + ", ".join(f"{k} ({v:.0%})" for k, v in missing)
                + ".",
                features=[k for k, _ in missing],
                evidence=dict(missing),
            )
        )
    return out


def _sections(check: str, a: _Analysis, opts: DescriptiveOptions) -> list[Section]:
    cols, st, rho, n, n_all, n_sample = a.cols, a.st, a.rho, a.n, a.n_all, len(a.sample)
    positive, base_rate = a.positive, a.base_rate
    sample_note = (
        f"Rank statistics (Mann-Whitney tests, AUCs, Spearman) use a uniform sample of "
        f"{n_sample:,} rows; counts, percentiles and chi-square tests use all {n:,}."
        if n_sample < n
        else "All statistics use every valid row."
    )
    numeric_rows = []
    for c in cols:
        s = st[c.name]
        if c.kind != "numeric":
            continue
        q = s.numeric or {}
        numeric_rows.append(
            [
                c.name,
                c.role,
                s.count,
                s.missing,
                s.distinct,
                q.get("mean"),
                q.get("std"),
                q.get("min"),
                *[q.get(f"p{p}") for p in PERCENTILES],
                q.get("max"),
                q.get("skew"),
            ]
        )
    cat_rows = []
    for c in cols:
        s = st[c.name]
        if c.kind != "categorical":
            continue
        top = ", ".join(f"{lab}: {cnt / max(s.count, 1):.1%}" for lab, cnt in (s.top or [])[:6])
        more = len(s.top or []) - 6
        cat_rows.append(
            [
                c.name,
                c.role,
                s.count,
                s.missing,
                s.distinct,
                top + (f" (+{more} more)" if more > 0 else ""),
            ]
        )
    overview = Section(
        title="Descriptive analysis (D2)",
        check=check,
        text=[
            f"{n:,} of {n_all:,} rows satisfy the contract and are described here; the "
            f"rate of {positive} is {base_rate:.2%}. {sample_note}"
        ],
        tables=[
            t
            for t in (
                Table(
                    caption="Numeric features",
                    columns=[
                        "feature",
                        "role",
                        "count",
                        "missing",
                        "distinct",
                        "mean",
                        "std",
                        "min",
                        *[f"p{p}" for p in PERCENTILES],
                        "max",
                        "skew",
                    ],
                    rows=numeric_rows,
                )
                if numeric_rows
                else None,
                Table(
                    caption="Categorical and boolean features (top categories with shares)",
                    columns=["feature", "role", "count", "missing", "distinct", "top categories"],
                    rows=cat_rows,
                )
                if cat_rows
                else None,
            )
            if t is not None
        ],
    )
    ranked = sorted(cols, key=lambda c: -(st[c.name].auc if not math.isnan(st[c.name].auc) else 0))
    assoc_rows = []
    for c in ranked:
        fs = st[c.name]
        assoc_rows.append(
            [
                c.name,
                fs.mw_p if c.kind == "numeric" else "",
                fs.rank_biserial if c.kind == "numeric" else "",
                fs.chi2_p,
                fs.chi2_dof,
                fs.cramers_v,
                fs.p_adjusted,
                (_strength(fs.effect) if fs.p_adjusted < opts.alpha else "none detected")
                if not math.isnan(fs.p_adjusted)
                else "not tested",
                fs.auc,
            ]
        )
    auc_names = [c.name for c in ranked if not math.isnan(st[c.name].auc)]
    association = Section(
        title="D2 · Association with the label",
        check=check,
        text=[
            "Every feature: chi-square test of independence between its categories / values / "
            "quantile bins and the label (catches any shape of relation), effect size Cramér's "
            "V. Numeric features also: Mann-Whitney U test (a shift between the classes), effect "
            "size rank-biserial r (+1: every positive row has a larger value than every "
            "negative row); their p-value is the Bonferroni-combined smaller of the two. "
            "p-values are then adjusted for multiple testing across features "
            "(Benjamini-Hochberg). Strength reads the larger effect size: 0.1 small, 0.3 "
            "medium, 0.5 large. 'AUC alone' is how well the feature by itself separates the "
            f"classes (0.5 = not at all; above {opts.leakage_auc} suggests leakage)."
        ],
        tables=[
            Table(
                columns=[
                    "feature",
                    "Mann-Whitney p",
                    "rank-biserial r",
                    "chi-square p",
                    "dof",
                    "Cramér's V",
                    "adjusted p",
                    "strength",
                    "AUC alone",
                ],
                rows=assoc_rows,
            )
        ],
        plots=[
            PlotSpec(
                kind="barh",
                title=f"Single-feature AUC for {positive}",
                data={
                    "labels": auc_names,
                    "values": [st[k].auc for k in auc_names],
                    "vline": 0.5,
                    "xlabel": "AUC of the feature alone (0.5 = no information)",
                    "xlim": [0.45, 1.0],
                    "figsize": [6.4, max(2.5, 0.22 * len(auc_names) + 1.0)],
                },
            )
        ]
        if auc_names
        else [],
    )
    names = [c.name for c in cols]
    k = len(names)
    strong_pairs = sorted(
        (
            (names[i], names[j], float(rho[i, j]))
            for i in range(k)
            for j in range(i + 1, k)
            if abs(rho[i, j]) > 0.8
        ),
        key=lambda t: -abs(t[2]),
    )
    correlations = Section(
        title="D2 · Correlations",
        check=check,
        text=[
            "Spearman rank correlation of every feature pair (categories enter as their index "
            "in the contract, so read multi-level nominal categories with care; missing values "
            f"at the median). Pairs above |rho| = {opts.redundant_rho} are reported as redundant."
        ],
        tables=[
            Table(
                caption="Pairs with |rho| > 0.8",
                columns=["feature", "feature", "Spearman rho", "redundant"],
                rows=[
                    [a, b, r, "yes" if abs(r) > opts.redundant_rho else ""]
                    for a, b, r in strong_pairs
                ],
            )
        ]
        if strong_pairs
        else [],
        plots=[
            PlotSpec(
                kind="heatmap",
                title="Spearman correlation",
                data={
                    "matrix": np.where(np.isnan(rho), 0.0, rho).round(3).tolist(),
                    "labels": names,
                    "annotate": k <= 12,
                    "figsize": [min(11.0, 2.5 + 0.32 * k)] * 2,
                },
            )
        ]
        if k > 1
        else [],
    )
    bivariate_rows: list[list[Any]] = []
    plots: list[PlotSpec] = []
    for c in cols:
        s = st[c.name]
        if s.bin_labels is None or s.bin_rows is None or s.bin_pos is None:
            continue
        low, high = wilson_interval(s.bin_pos, s.bin_rows)
        for lab, r, p, lo, hi in zip(s.bin_labels, s.bin_rows, s.bin_pos, low, high, strict=True):
            bivariate_rows.append(
                [c.name, lab, int(r), r / max(n, 1), int(p), p / r if r else math.nan, lo, hi]
            )
    for c in ranked[: opts.max_plot_features]:
        s = st[c.name]
        h = _hist_plot(c, s, a, opts.skew)
        r = _rate_plot(c, s, base_rate, positive)
        plots.extend(p for p in (h, r) if p is not None)
    per_feature = Section(
        title="D2 · Feature by feature",
        check=check,
        text=[
            f"For each feature (most associated with the label first): its distribution in each "
            f"class, and the rate of {positive} by category, value or quantile bin with its 95% "
            "Wilson interval."
        ],
        tables=[
            Table(
                caption=f"Rate of {positive} by category / bin",
                columns=[
                    "feature",
                    "value / bin",
                    "rows",
                    "share",
                    "positives",
                    "rate",
                    "95% low",
                    "95% high",
                ],
                rows=bivariate_rows,
            )
        ],
        plots=plots,
    )
    return [overview, association, correlations, per_feature]
