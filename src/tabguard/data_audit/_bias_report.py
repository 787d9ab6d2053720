"""Wording of the bias check: disparity and proxy findings, tables and plots (D4).

The computation (:class:`~tabguard.data_audit._bias.BiasCheck`) measures
:class:`~tabguard.data_audit._bias.Disparity` and :class:`~tabguard.data_audit._bias.Proxy`
objects; this module words and draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tabguard.data_audit._bias import BiasOptions, Disparity, Proxy, _best
from tabguard.data_audit._stats import wilson_interval
from tabguard.reports import Finding, PlotSpec, Section, Table, format_number

CHECK = "bias"


def nothing_to_audit() -> Section:
    """The section when no row satisfies the contract."""
    return Section(
        title="Disparate impact and unlawful features (D4)",
        check=CHECK,
        text=["No row satisfies the contract: nothing to audit."],
    )


def bias_findings(
    disparities: list[Disparity],
    proxies: list[Proxy],
    any_attribute: bool,
    favourable: str,
    opts: BiasOptions,
    sensitive: Sequence[str] = (),
) -> list[Finding]:
    """Disparity findings, proxy findings, and a warning when there is nothing to audit.

    ``sensitive`` names the model features that look like a sensitive attribute (each has an
    info of its own): the warning then names them instead of saying no column looks like one.
    """
    out = _disparity_findings(CHECK, disparities, favourable, opts)
    out.extend(_proxy_findings(CHECK, proxies, opts))
    if not any_attribute:
        if sensitive:
            one = len(sensitive) == 1
            looks = (
                f"; {', '.join(sensitive)} {'looks' if one else 'look'} sensitive but "
                f"{'is a model feature' if one else 'are model features'} (see the info), so "
                "disparate impact is not measured"
            )
        else:
            looks = " and no column looks like one, so disparate impact cannot be measured"
        out.append(
            Finding(
                check=CHECK,
                severity="warning",
                message=f"No protected attribute to audit: the contract declares none{looks}.",
                recommendation="Add the protected attributes (sex, age band, ...) to the "
                "data and declare them 'protected: true': they are audited, never used.",
            )
        )
    return out


def _disparity_findings(
    check: str, disparities: list[Disparity], fav_name: str, opts: BiasOptions
) -> list[Finding]:
    out = []
    for d in disparities:
        if not d.verdict:
            continue
        rates = d.rates
        detail = ", ".join(
            f"{g}: {r:.1%} of {format_number(int(n))}"
            for g, r, n in zip(d.groups, rates, d.rows, strict=True)
        )
        if math.isnan(d.ratio):
            msg = f"Disparate impact by {d.attribute} {d.verdict}."
        else:
            msg = (
                f"Disparate impact of the label by {d.attribute}: the rate of {fav_name} is "
                f"{detail}; {d.verdict}."
            )
        rec = {
            "critical": "The labels encode a strong disparity the model would learn. Find out "
            "why (collection, past decisions) before training; re-weighting or re-labelling "
            "needs a documented decision.",
            "warning": "Investigate the cause (a legitimate risk difference, a past decision "
            "bias, sampling); the model audit (M4) then checks the decisions.",
        }.get(d.severity)
        out.append(
            Finding(
                check=check,
                severity=d.severity,
                message=msg[:1200],
                features=d.attribute.split(" × "),
                evidence={
                    "ratio": d.ratio,
                    "ratio_ci95": [d.ratio_low, d.ratio_high],
                    "parity_difference": d.difference,
                    "lowest_group": d.lowest,
                    "highest_group": d.highest,
                    "chi2": d.chi2,
                    "p_adjusted": d.p_adjusted,
                    "cramers_v": d.cramers_v,
                    "source": d.source,
                },
                recommendation=rec,
            )
        )
    return out


def _proxy_findings(check: str, proxies: list[Proxy], opts: BiasOptions) -> list[Finding]:
    out = []
    for p in proxies:
        strong = sorted(
            ((k, v) for k, v in p.single.items() if v >= opts.proxy_auc),
            key=lambda kv: -kv[1],
        )
        joint = not math.isnan(p.joint_auc) and p.joint_auc >= opts.proxy_auc
        best = _best(p)
        joint_text = (
            f"all model features together predict it with AUC {p.joint_auc:.3f}"
            + (f" (mostly {', '.join(p.joint_top)})" if p.joint_top and p.joint_auc >= 0.6 else "")
            if not math.isnan(p.joint_auc)
            else ""
        )
        if strong or joint:
            parts = []
            if strong:
                parts.append(
                    "single features predicting it: "
                    + ", ".join(f"{k} (AUC {v:.3f})" for k, v in strong)
                )
            if joint_text:
                parts.append(joint_text)
            out.append(
                Finding(
                    check=check,
                    severity="warning",
                    message=f"Proxy of the protected attribute {p.attribute}: "
                    + "; ".join(parts)
                    + ". The model can learn the protected attribute through them.",
                    features=[k for k, _ in strong] or p.joint_top,
                    evidence={
                        "attribute": p.attribute,
                        "single_auc": dict(strong),
                        "joint_auc": p.joint_auc,
                        "joint_top_features": p.joint_top,
                    },
                    recommendation="Check why these features carry the protected attribute; "
                    "drop or coarsen them, and audit the model's decisions by group (M4).",
                )
            )
        else:
            out.append(
                Finding(
                    check=check,
                    severity="info",
                    message=f"No model feature is a strong proxy of {p.attribute} (AUC < "
                    f"{opts.proxy_auc}): "
                    + (f"best single feature {best[0]} (AUC {best[1]:.3f})" if best else "")
                    + (f"; {joint_text}" if joint_text else "")
                    + ".",
                    features=[best[0]] if best else [],
                    evidence={"attribute": p.attribute, "joint_auc": p.joint_auc},
                )
            )
    return out


def bias_sections(
    disparities: list[Disparity],
    proxies: list[Proxy],
    columns_table: list[list[Any]],
    fav_name: str,
    opts: BiasOptions,
    n: int,
) -> list[Section]:
    """The report sections: disparities by group, proxies, the protected columns found."""
    check = CHECK
    summary_rows = []
    group_rows = []
    plots = []
    for d in disparities:
        summary_rows.append(
            [
                d.attribute,
                d.source,
                len(d.groups),
                d.lowest,
                d.highest,
                d.ratio,
                d.ratio_low,
                d.ratio_high,
                d.difference,
                d.p_adjusted,
                d.cramers_v,
                d.severity,
                d.verdict,
            ]
        )
        rates = d.rates
        low, high = wilson_interval(d.favourable, d.rows)
        top = np.nanmax(np.where(d.eligible, rates, np.nan)) if d.eligible.any() else math.nan
        for i, g in enumerate(d.groups):
            group_rows.append(
                [
                    d.attribute,
                    g,
                    int(d.rows[i]),
                    int(d.favourable[i]),
                    rates[i],
                    low[i],
                    high[i],
                    rates[i] / top if d.eligible[i] and top > 0 else math.nan,
                    "" if d.eligible[i] else f"< {opts.min_group} rows: left out",
                ]
            )
        if d.rows.size >= 2 and d.rows.size <= 40:
            err = np.vstack([np.clip(rates - low, 0, None), np.clip(high - rates, 0, None)])
            plots.append(
                PlotSpec(
                    kind="bar",
                    title=f"Rate of {fav_name} by {d.attribute}",
                    data={
                        "labels": d.groups,
                        "series": {fav_name: rates.tolist()},
                        "errors": {fav_name: err.tolist()},
                        "hline": opts.warn_ratio * top if not math.isnan(top) else None,
                        "ylabel": f"rate of {fav_name}",
                    },
                    caption=f"95% Wilson intervals. Dashed: {opts.warn_ratio:g} × the highest "
                    "group rate (four-fifths rule); a group below it fails the rule.",
                )
            )
    text = [
        f"On the {n:,} rows that satisfy the contract: rate of the favourable label "
        f"({fav_name}) by group of each protected attribute. Disparate-impact ratio = lowest "
        "group rate / highest group rate (95% CI by the Katz log method), over groups with at "
        f"least {opts.min_group} rows; parity difference = highest - lowest rate; chi-square "
        "test of independence, BH-adjusted across attributes. Policy: ratio >= "
        f"{opts.warn_ratio} meets the four-fifths rule (info); below it and significant: "
        f"warning (investigate); upper CI bound below {opts.critical_ratio}: critical. "
        "Historical labels record past outcomes and decisions: a disparity here is a reason to "
        "investigate, and the model audit (M4) checks the model's decisions."
    ]
    tables = []
    if columns_table:
        tables.append(
            Table(
                caption="Protected and sensitive columns",
                columns=["column", "declared as", "why", "verdict"],
                rows=columns_table,
            )
        )
    if summary_rows:
        tables.append(
            Table(
                caption="Disparate impact of the label",
                columns=[
                    "attribute",
                    "source",
                    "groups",
                    "lowest",
                    "highest",
                    "DI ratio",
                    "95% low",
                    "95% high",
                    "parity diff.",
                    "adjusted p",
                    "Cramér's V",
                    "severity",
                    "verdict",
                ],
                rows=summary_rows,
            )
        )
        tables.append(
            Table(
                caption=f"Rate of {fav_name} by group",
                columns=[
                    "attribute",
                    "group",
                    "rows",
                    "favourable",
                    "rate",
                    "95% low",
                    "95% high",
                    "ratio to highest",
                    "note",
                ],
                rows=group_rows,
            )
        )
    sections = [
        Section(
            title="Disparate impact and unlawful features (D4)",
            check=check,
            text=text,
            tables=tables,
            plots=plots,
        )
    ]
    if proxies:
        rows_ = []
        proxy_plots = []
        for p in proxies:
            ranked = sorted(
                ((k, v) for k, v in p.single.items() if not math.isnan(v)), key=lambda kv: -kv[1]
            )
            for k, v in ranked[:15]:
                rows_.append(
                    [p.attribute, p.target_group, k, v, "proxy" if v >= opts.proxy_auc else ""]
                )
            bars = list(ranked[:15])
            if not math.isnan(p.joint_auc):
                rows_.append(
                    [
                        p.attribute,
                        p.target_group,
                        "all model features (LightGBM)",
                        p.joint_auc,
                        "proxy" if p.joint_auc >= opts.proxy_auc else "",
                    ]
                )
                bars.append(("ALL (LightGBM)", p.joint_auc))
            proxy_plots.append(
                PlotSpec(
                    kind="barh",
                    title=f"How well each feature predicts {p.attribute}",
                    data={
                        "labels": [k for k, _ in bars],
                        "values": [v for _, v in bars],
                        "colors": [
                            "#c0504d" if v >= opts.proxy_auc else "#1f4e79" for _, v in bars
                        ],
                        "vline": opts.proxy_auc,
                        "xlim": [0.45, 1.0],
                        "xlabel": "AUC (0.5 = no information)",
                        "figsize": [6.4, max(2.5, 0.25 * len(bars) + 1.0)],
                    },
                    caption=f"Dashed: the proxy threshold AUC {opts.proxy_auc:g}.",
                )
            )
        sections.append(
            Section(
                title="D4 · Proxies of protected attributes",
                check=check,
                text=[
                    "How well each model feature alone predicts the protected attribute (AUC, "
                    "direction-free; non-monotone relations through cross-fitted bin rates), "
                    "and all model features together (a small LightGBM, two-fold cross-fitted). "
                    f"AUC >= {opts.proxy_auc:g} makes a proxy: the model can learn the "
                    "protected attribute through it even though the attribute itself never "
                    "reaches the model."
                ],
                tables=[
                    Table(
                        columns=["attribute", "group predicted", "feature", "AUC", "verdict"],
                        rows=rows_,
                    )
                ],
                plots=proxy_plots,
            )
        )
    return sections
