"""D4 disparate impact of the label and unlawful features.

Three questions, on the rows that satisfy the contract:

1. **Disparate impact of the label.** For each protected attribute (declared ``protected`` in the
   contract, or recognised as protected from its name or values), the rate of the favourable
   label by group, the disparate-impact ratio (lowest group rate / highest group rate) with a
   95% confidence interval, the statistical parity difference, and a chi-square test of
   independence. Intersectional groups when there are two or more protected attributes.
2. **Unlawful features.** A column that names a protected attribute but is not declared
   ``protected`` would reach the model (when it is a contract feature) or sits in the training
   data unaudited (when the contract does not name it).
3. **Proxies.** Model features that predict a protected attribute: the AUC of each feature alone
   and of all model features together (a small LightGBM, cross-fitted).

Severity policy (documented in ``docs/data-audit.md``). Historical labels record past decisions
and outcomes; a disparity there is a reason to investigate, not by itself a reason to stop
training, so the four-fifths rule gives a *warning*:

* ratio >= 0.8 (four-fifths rule met), or fewer than two groups of ``min_group`` rows: info;
* ratio < 0.8 and significant (BH-adjusted chi-square p < 0.05): warning;
* ratio < 0.8 but not significant (small groups): info, stating so;
* extreme: even the upper 95% confidence bound of the ratio is below 0.5 (and significant):
  critical — the label itself then teaches the model to discriminate.

A protected attribute used as a model feature is critical (unlawful); an undeclared column that
looks protected is a warning; a strong proxy (AUC >= 0.8) is a warning; a sensitive attribute such
as a person's age or marital status used as a feature is info (lawful only under conditions).

fairlearn computes the group rates, the ratio and the difference (``MetricFrame``). It runs on
the group-by-label contingency table with counts as sample weights, which gives exactly the
per-row result at a fraction of the cost (``MetricFrame`` on a million raw rows takes seconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tabguard.checks import PROBABILITY_OPEN, CheckOptions, at_least, interval, option
from tabguard.contract import ProtectedMatch, protected_name_match, protected_value_match
from tabguard.contract._validate import _canon
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._columns import Column, prepare_columns, prepare_undeclared
from tabguard.data_audit._descriptive import held_ids, sample_dense
from tabguard.data_audit._stats import (
    bh_adjust,
    categorical_auc,
    chi2_independence,
    numeric_auc_dense,
    sample_positions,
)
from tabguard.reports import Finding, Severity, format_number

_Z95 = 1.959964
# Why a sensitive attribute needs a reviewer's confirmation (facts, not legal advice).
_SENSITIVE_NOTE = {
    "age": "Age is protected in employment and, with exceptions, in credit: the US ECOA allows "
    "it in credit scoring only in empirically derived, demonstrably sound systems.",
    "marital status": "Marital status is a prohibited basis for credit decisions under the US "
    "ECOA and is protected by several national equal-treatment laws.",
    "health": "Health data is a special category of personal data under the GDPR (Art. 9).",
    "other": "Its use is lawful only under conditions in some jurisdictions and products.",
}


@dataclass(frozen=True)
class BiasOptions(CheckOptions):
    """Settings of the bias check (``options={"bias": {...}}``)."""

    check: ClassVar[str] = "bias"

    warn_ratio: float = option(
        0.8,
        "disparate-impact ratio below which a significant disparity is a warning (the "
        "four-fifths rule)",
        interval(0.0, 1.0, "right"),
    )
    critical_ratio: float = option(
        0.5,
        "the disparity is critical when the upper 95% bound of the ratio is below this",
        interval(0.0, 1.0, "right"),
    )
    alpha: float = option(
        0.05,
        "level of the chi-square tests (Benjamini-Hochberg adjusted across attributes)",
        PROBABILITY_OPEN,
    )
    min_group: int = option(
        30,
        "groups with fewer rows are shown but left out of the ratio (their rate is too noisy)",
        at_least(1),
    )
    proxy_auc: float = option(
        0.8,
        "AUC at or above which a feature (or all features together) is a proxy",
        interval(0.5, 1.0),
    )
    sample_size: int = option(
        200_000, "rows sampled for the single-feature proxy AUCs", at_least(100)
    )
    model_rows: int = option(
        50_000, "rows sampled for the all-features proxy model (0 disables it)", at_least(0)
    )
    max_intersections: int = option(
        10, "pairs of protected attributes crossed into intersectional groups", at_least(0)
    )

    def validate(self) -> None:
        """Field rules, and ``critical_ratio <= warn_ratio``."""
        super().validate()
        if self.critical_ratio > self.warn_ratio:
            self.fail("critical_ratio", f"must be <= warn_ratio ({self.warn_ratio:g})")


@dataclass
class _Attribute:
    """A protected attribute to audit."""

    name: str
    source: str  # "declared", "model feature", "undeclared column"
    column: Column
    match: ProtectedMatch | None = None


@dataclass
class Disparity:
    """Favourable-label rates of the groups of one attribute (or intersection).

    Attributes
    ----------
    attribute : str
        Attribute name, ``"A × B"`` for an intersection.
    groups : list of str
    rows, favourable : ndarray
        Rows and favourable labels per group.
    eligible : ndarray of bool
        Groups with at least ``min_group`` rows (the ratio uses only these).
    ratio : float
        Lowest / highest favourable rate among eligible groups (fairlearn ``ratio()``).
    ratio_low, ratio_high : float
        95% confidence interval of the ratio (Katz log method).
    difference : float
        Highest minus lowest rate (statistical parity difference; fairlearn ``difference()``).
    chi2, p_value, dof, cramers_v : float
        Chi-square test of independence of group and label (eligible groups).
    p_adjusted : float
        Benjamini-Hochberg adjusted across the audited attributes and intersections.
    """

    attribute: str
    source: str
    groups: list[str]
    rows: np.ndarray
    favourable: np.ndarray
    eligible: np.ndarray
    ratio: float = math.nan
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    difference: float = math.nan
    lowest: str = ""
    highest: str = ""
    chi2: float = math.nan
    p_value: float = math.nan
    dof: int = 0
    cramers_v: float = math.nan
    p_adjusted: float = math.nan
    severity: Severity = "info"
    verdict: str = ""

    @property
    def rates(self) -> np.ndarray:
        """Favourable rate per group."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.favourable / self.rows


# --------------------------------------------------------------------------------------------
# fairlearn, wrapped here and nowhere else
# --------------------------------------------------------------------------------------------
def _fairlearn_rates(
    groups: Sequence[str], rows: np.ndarray, favourable: np.ndarray
) -> tuple[pd.Series, float, float]:
    """Favourable rate per group, ratio and difference, with fairlearn's ``MetricFrame``.

    The frame runs on two weighted rows per group (favourable / not) instead of one per data
    row: the same weighted selection rates, in milliseconds.
    """
    from fairlearn.metrics import MetricFrame, selection_rate

    g = np.repeat(np.asarray(groups, dtype=object), 2)
    label = np.tile([1, 0], len(groups))
    weight = np.column_stack([favourable, rows - favourable]).ravel().astype(float)
    keep = weight > 0
    mf = MetricFrame(
        metrics=selection_rate,
        y_true=label[keep],
        y_pred=label[keep],
        sensitive_features=pd.Series(g[keep], name="group"),
        sample_params={"sample_weight": weight[keep]},
    )
    by_group = mf.by_group
    return by_group, float(mf.ratio()), float(mf.difference())


# --------------------------------------------------------------------------------------------
# Attributes to audit
# --------------------------------------------------------------------------------------------
def _favourable(ctx: AuditContext) -> np.ndarray:
    """1 where the row carries the favourable label (binary labels: positive or not)."""
    c = ctx.contract
    fav = c.favorable_label
    if fav is None:
        positive_is_good = c.decision.positive_means == "approve"
    else:
        positive_is_good = _canon(fav) == _canon(c.label.positive)
    y = ctx.y.astype(np.int64)
    return y if positive_is_good else 1 - y


def _find_attributes(
    ctx: AuditContext, rows: np.ndarray
) -> tuple[list[_Attribute], list[Finding], list[list[Any]]]:
    """Protected attributes to audit, unlawful-feature findings and the table of columns."""
    contract = ctx.contract
    findings: list[Finding] = []
    table: list[list[Any]] = []
    attrs = [
        _Attribute(c.name, "declared", c)
        for c in prepare_columns(ctx, rows, contract.protected_features())
    ]
    for name, spec in contract.items():
        if spec.protected:
            table.append([name, "protected", "declared protected", "audited, never a model input"])
            continue
        match = protected_name_match(name)
        if match is None and spec.type == "category":
            match = protected_value_match(spec.categories or [])
        if match is None:
            continue
        by_name = match.reason.startswith("its name")
        if match.tier == "protected":
            severity = "critical" if by_name else "warning"
            findings.append(
                Finding(
                    check="bias",
                    severity=severity,
                    message=f"Unlawful feature: {name} looks like a protected attribute "
                    f"({match.attribute}: {match.reason}) but the contract declares it as a "
                    "model feature, so it would reach the model.",
                    features=[name],
                    evidence={"attribute": match.attribute, "reason": match.reason},
                    recommendation=f"Declare {name} 'protected: true' in the contract (it is "
                    "then audited for disparate impact and never reaches the model), or rename "
                    "it if it is not what its name says.",
                )
            )
            col = prepare_columns(ctx, rows, [name])[0]
            attrs.append(_Attribute(name, "model feature", col, match))
            table.append([name, spec.type, match.reason, f"{severity}: would reach the model"])
        else:
            findings.append(
                Finding(
                    check="bias",
                    severity="info",
                    message=f"{name} is a model feature and looks like a sensitive attribute "
                    f"({match.attribute}: {match.reason}). "
                    + _SENSITIVE_NOTE.get(match.attribute, _SENSITIVE_NOTE["other"]),
                    features=[name],
                    evidence={"attribute": match.attribute, "reason": match.reason},
                    recommendation="Confirm and document that its use is lawful for this "
                    "product; otherwise declare it protected.",
                )
            )
            table.append([name, spec.type, match.reason, "info: confirm it is lawful"])
    skip = {contract.label.column, *([contract.id] if contract.id else [])}
    for name in ctx.validation.unknown_columns:
        if name in skip:
            continue
        raw = ctx.data[name]
        match = protected_name_match(name)
        if match is None and not pd.api.types.is_numeric_dtype(raw):
            uniques = pd.unique(raw.iloc[rows[:100_000]].dropna())
            match = protected_value_match(uniques) if len(uniques) <= 6 else None
        if match is None or match.tier != "protected":
            continue
        findings.append(
            Finding(
                check="bias",
                severity="warning",
                message=f"Column {name} of the data looks like a protected attribute "
                f"({match.attribute}: {match.reason}) and is not in the contract: the contract "
                "transform leaves it out of the model, but it travels with the training data "
                "unaudited.",
                features=[name],
                evidence={"attribute": match.attribute, "reason": match.reason},
                recommendation=f"Declare {name} in the contract with 'protected: true' so it is "
                "audited, or remove it from the data if it has no business there.",
            )
        )
        attrs.append(
            _Attribute(name, "undeclared column", prepare_undeclared(name, raw.iloc[rows]), match)
        )
        table.append([name, "not in contract", match.reason, "warning: travels unaudited"])
    return attrs, findings, table


# --------------------------------------------------------------------------------------------
# Disparate impact
# --------------------------------------------------------------------------------------------
def _disparity(
    attribute: str,
    source: str,
    codes: np.ndarray,
    labels: list[str],
    fav: np.ndarray,
    opts: BiasOptions,
) -> Disparity:
    k = len(labels)
    rows = np.bincount(codes, minlength=k)[:k]
    favourable = np.bincount(codes, weights=fav, minlength=k)[:k]
    present = rows > 0
    d = Disparity(
        attribute,
        source,
        [labels[i] for i in np.flatnonzero(present)],
        rows[present],
        favourable[present],
        rows[present] >= opts.min_group,
    )
    elig = np.flatnonzero(d.eligible)
    if elig.size < 2:
        d.verdict = (
            f"not assessed: fewer than two groups with >= {opts.min_group} rows"
            if d.rows.size >= 2
            else "not assessed: one group only"
        )
        return d
    names = [d.groups[i] for i in elig]
    by_group, ratio, difference = _fairlearn_rates(names, d.rows[elig], d.favourable[elig])
    rates = by_group.reindex(names).to_numpy(dtype=float)
    d.ratio, d.difference = ratio, difference
    lo_i, hi_i = int(np.argmin(rates)), int(np.argmax(rates))
    d.lowest, d.highest = names[lo_i], names[hi_i]
    d.ratio_low, d.ratio_high = _ratio_interval(
        d.favourable[elig][lo_i], d.rows[elig][lo_i], d.favourable[elig][hi_i], d.rows[elig][hi_i]
    )
    table = np.column_stack([d.favourable[elig], d.rows[elig] - d.favourable[elig]])
    d.chi2, d.p_value, d.dof, d.cramers_v = chi2_independence(table)
    return d


def _ratio_interval(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float]:
    """95% interval of (k1/n1) / (k2/n2) by the Katz log method (0.5 added to zero counts)."""
    if k1 == 0 or k2 == 0:
        k1, k2, n1, n2 = k1 + 0.5, k2 + 0.5, n1 + 0.5, n2 + 0.5
    r = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(1 / k1 - 1 / n1 + 1 / k2 - 1 / n2, 0.0))
    return r * math.exp(-_Z95 * se), r * math.exp(_Z95 * se)


def _grade(d: Disparity, opts: BiasOptions) -> None:
    """Severity and verdict of one disparity (policy in the module docstring)."""
    if math.isnan(d.ratio):
        d.severity = "info"
        return
    significant = d.p_adjusted < opts.alpha
    ratio = f"{d.ratio:.3f} (95% CI {d.ratio_low:.3f}-{d.ratio_high:.3f})"
    if d.ratio >= opts.warn_ratio:
        d.severity, d.verdict = "info", f"ratio {ratio} meets the four-fifths rule"
    elif significant and d.ratio_high < opts.critical_ratio:
        d.severity = "critical"
        d.verdict = f"extreme disparity: ratio {ratio}, upper bound below {opts.critical_ratio}"
    elif significant:
        d.severity = "warning"
        d.verdict = f"ratio {ratio} below {opts.warn_ratio} (four-fifths rule), significant"
    else:
        d.severity = "info"
        d.verdict = (
            f"ratio {ratio} below {opts.warn_ratio} but not significant "
            f"(adjusted p = {format_number(d.p_adjusted)}): groups too small to tell"
        )


def _intersection(a: _Attribute, b: _Attribute) -> tuple[np.ndarray, list[str]]:
    ca, la = a.column.group_codes()
    cb, lb = b.column.group_codes()
    joint = ca * len(lb) + cb
    labels = [f"{x} & {y}" for x in la for y in lb]
    return joint, labels


# --------------------------------------------------------------------------------------------
# Proxies
# --------------------------------------------------------------------------------------------
@dataclass
class Proxy:
    """How well model features predict one protected attribute."""

    attribute: str
    target_group: str
    single: dict[str, float]
    joint_auc: float = math.nan
    joint_top: list[str] = field(default_factory=list)


def _proxy_targets(codes: np.ndarray, labels: list[str], opts: BiasOptions) -> list[int]:
    """Groups predicted one-vs-rest: the smaller of two groups, else every eligible group."""
    counts = np.bincount(codes, minlength=len(labels))
    eligible = [i for i in range(len(labels)) if counts[i] >= opts.min_group]
    if len(eligible) < 2:
        return []
    if len(eligible) == 2:
        return [min(eligible, key=lambda i: counts[i])]
    return eligible


def _proxies(
    ctx: AuditContext,
    rows: np.ndarray,
    attr: _Attribute,
    features: list[Column],
    opts: BiasOptions,
    rng: np.random.Generator,
) -> Proxy | None:
    codes, labels = attr.column.group_codes()
    targets = _proxy_targets(codes, labels, opts)
    if not targets:
        return None
    s = sample_positions(len(rows), opts.sample_size, rng)
    single: dict[str, float] = {}
    for f in features:
        if f.name == attr.name:
            continue
        best = math.nan
        # a numeric feature's sample is sorted once for every target group (three groups of a
        # gender column: three sorts of 200,000 values before)
        dense = None
        if f.kind == "numeric" and f.x is not None:  # sorted once, or read from the value ids
            every = len(rows) == ctx.n_rows
            dense = sample_dense(f, s, held_ids(ctx, f, None if every else rows))
        for t in targets:
            z = (codes[s] == t).astype(np.int64)
            if dense is not None:
                auc = numeric_auc_dense(dense, z, rng)
            elif f.codes is not None:
                auc = categorical_auc(f.codes[s], z, rng)
            else:
                continue
            best = auc if math.isnan(best) else max(best, auc)
        single[f.name] = best
    target_name = labels[targets[0]] if len(targets) == 1 else "each group"
    proxy = Proxy(attr.name, target_name, single)
    if opts.model_rows > 0:
        proxy.joint_auc, proxy.joint_top = _joint_proxy(
            ctx, rows, codes, targets, attr.name, opts, rng
        )
    return proxy


def _joint_proxy(
    ctx: AuditContext,
    rows: np.ndarray,
    codes: np.ndarray,
    targets: list[int],
    exclude: str,
    opts: BiasOptions,
    rng: np.random.Generator,
) -> tuple[float, list[str]]:
    """Cross-fitted AUC of a small LightGBM predicting the attribute from all model features."""
    from lightgbm import LGBMClassifier
    from sklearn.metrics import roc_auc_score

    from tabguard.data_audit._context_model import histogram_layout

    s = sample_positions(len(rows), opts.model_rows, rng)
    idx = rows[s]
    names = ctx.transform.feature_names
    if "X" in ctx.cache:
        X = ctx.cache["X"][idx]
    else:
        X = ctx.transform.transform_frame(ctx.data.iloc[idx])
    keep = [j for j, n in enumerate(names) if n != exclude]
    if not keep:
        return math.nan, []
    X = X[:, keep]
    used = [names[j] for j in keep]
    cats = [used.index(n) for n in ctx.transform.categorical_features if n in used]
    c = codes[s]
    fold = rng.integers(0, 2, size=len(s))
    aucs: list[float] = []
    gain = np.zeros(len(used))
    for t in targets:
        z = (c == t).astype(np.int64)
        if z.min() == z.max():
            continue
        pred = np.empty(len(z))
        for k in (0, 1):
            train, test = fold != k, fold == k
            if z[train].min() == z[train].max() or not test.any():
                pred[test] = z[train].mean()
                continue
            model = LGBMClassifier(
                n_estimators=60,
                learning_rate=0.1,
                num_leaves=15,
                min_child_samples=20,
                subsample=0.8,
                subsample_freq=1,
                colsample_bytree=0.8,
                random_state=ctx.random_state,
                n_jobs=1,  # the machine is shared; threads oversubscribe under load
                verbose=-1,
                **histogram_layout(X.shape[1]),
            )
            model.fit(X[train], z[train], categorical_feature=cats or "auto")
            proba = np.asarray(model.predict_proba(X[test]))
            pred[test] = proba[:, 1]
            gain += model.booster_.feature_importance(importance_type="gain")
        aucs.append(float(roc_auc_score(z, pred)))
    if not aucs:
        return math.nan, []
    top = [used[j] for j in np.argsort(-gain)[:3] if gain[j] > 0]
    return float(np.mean(aucs)), top


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------
@register_check
class BiasCheck:
    """Disparate impact of the label, unlawful features and proxies (D4)."""

    name: ClassVar[str] = "bias"
    order: ClassVar[int] = 70
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    reads_matrix: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = BiasOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Audit every protected attribute, declared or recognised; the wording of disparities
        and proxies is ``_bias_report``'s."""
        from tabguard.data_audit._bias_report import bias_findings, bias_sections, nothing_to_audit

        opts = ctx.opts(BiasOptions)
        res = CheckResult()
        rows = np.flatnonzero(ctx.valid)
        attrs, res.findings, columns_table = _find_attributes(ctx, rows)
        if rows.size == 0:
            res.sections.append(nothing_to_audit())
            return res
        fav_all = _favourable(ctx)
        fav = fav_all[rows].astype(float)
        rng = np.random.default_rng(ctx.random_state)
        disparities: list[Disparity] = []
        with ctx.progress.stage("disparate impact", total=len(attrs) + 1) as stage:
            for a in attrs:
                codes, labels = a.column.group_codes()
                disparities.append(_disparity(a.name, a.source, codes, labels, fav, opts))
            for a, b in list(combinations(attrs, 2))[: opts.max_intersections]:
                codes, labels = _intersection(a, b)
                disparities.append(
                    _disparity(f"{a.name} × {b.name}", "intersection", codes, labels, fav, opts)
                )
            adjusted = bh_adjust(np.array([d.p_value for d in disparities]))
            for d, p in zip(disparities, adjusted, strict=True):
                d.p_adjusted = float(p)
                _grade(d, opts)
            stage.advance()
            features = prepare_columns(ctx, rows, ctx.contract.model_features())
            proxies: list[Proxy] = []
            for a in attrs:
                p = _proxies(ctx, rows, a, features, opts, rng)
                if p is not None:
                    proxies.append(p)
                stage.advance()
        fav_name = _favourable_name(ctx)
        # features that look sensitive (an info each above), named in the "nothing to audit"
        # warning so it does not contradict them
        sensitive = [f.features[0] for f in res.findings if f.severity == "info" and f.features]
        res.findings.extend(
            bias_findings(disparities, proxies, bool(attrs), fav_name, opts, sensitive)
        )
        res.sections = bias_sections(disparities, proxies, columns_table, fav_name, opts, rows.size)
        res.summary = {
            "favourable_label": fav_name,
            "attributes": [a.name for a in attrs],
            "disparate_impact": {
                d.attribute: {
                    "ratio": d.ratio,
                    "ci": [d.ratio_low, d.ratio_high],
                    "difference": d.difference,
                    "p_adjusted": d.p_adjusted,
                    "severity": d.severity,
                }
                for d in disparities
            },
            "proxies": {
                p.attribute: {"joint_auc": p.joint_auc, "best_single": _best(p)} for p in proxies
            },
        }
        return res


def _favourable_name(ctx: AuditContext) -> str:
    c = ctx.contract
    fav = c.favorable_label
    if fav is not None:
        return f"{c.label.column}={fav}"
    good = c.decision.positive_means == "approve"
    return f"{c.label.column}{'=' if good else '≠'}{c.label.positive}"


def _best(p: Proxy) -> list[Any]:
    items = [(k, v) for k, v in p.single.items() if not math.isnan(v)]
    if not items:
        return []
    k, v = max(items, key=lambda kv: kv[1])
    return [k, v]
