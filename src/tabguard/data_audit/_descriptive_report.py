"""Wording of the descriptive analysis: findings, tables and plots of the report (D2).

The computation (:class:`~tabguard.data_audit._descriptive.DescriptiveCheck`) returns a
:class:`~tabguard.data_audit._descriptive.DescriptiveResult`; this module words and draws it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tabguard.data_audit._columns import Column
from tabguard.data_audit._descriptive import (
    PERCENTILES,
    DescriptiveOptions,
    DescriptiveResult,
    FeatureStats,
)
from tabguard.data_audit._stats import wilson_interval
from tabguard.reports import Finding, PlotSpec, Section, Table, format_number

CHECK = "descriptive"


def nothing_to_describe(n_valid: int) -> Section:
    """The section when fewer than two rows satisfy the contract."""
    return Section(
        title="Descriptive analysis (D2)",
        check=CHECK,
        text=[f"Only {n_valid} row(s) satisfy the contract: nothing to describe."],
    )


_TOP_CATEGORIES = 20  # categories shown in plots and tables; the rest are pooled


def _strength(effect: float) -> str:
    a = abs(effect)
    if math.isnan(a):
        return "n/a"
    return "large" if a >= 0.5 else "medium" if a >= 0.3 else "small" if a >= 0.1 else "negligible"


# --------------------------------------------------------------------------------------------
# Plots (data only; tabguard.reports draws them)
# --------------------------------------------------------------------------------------------
def _hist_plot(
    c: Column, st: FeatureStats, a: DescriptiveResult, skew_limit: float
) -> PlotSpec | None:
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


def _top_bins(st: FeatureStats) -> tuple[list[str], np.ndarray, np.ndarray]:
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


def _rate_plot(c: Column, st: FeatureStats, base_rate: float, positive: str) -> PlotSpec | None:
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
def descriptive_findings(a: DescriptiveResult, opts: DescriptiveOptions) -> list[Finding]:
    """The findings of the descriptive analysis (constant, leaky, associated, skewed ...)."""
    check = CHECK
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


def descriptive_sections(a: DescriptiveResult, opts: DescriptiveOptions) -> list[Section]:
    """The report sections: overview, feature-by-feature tables, AUCs, Spearman, plots."""
    check = CHECK
    cols, st, rho, n, n_all, n_sample = a.cols, a.st, a.rho, a.n, a.n_all, len(a.sample)
    positive, base_rate = a.positive, a.base_rate
    sample_note = (
        f"Rank statistics (Mann-Whitney tests, AUCs, Spearman) use "
        f"{a.population.uniform_text if a.population is not None else 'a uniform sample'} of "
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
