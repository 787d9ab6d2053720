"""Wording of the importance check: findings per feature effect and the report section (M1).

The computation (:class:`~tabguard.model_audit._importance.ImportanceCheck`) measures a
:class:`~tabguard.model_audit._importance.FeatureEffect` per feature; this module words and
draws them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tabguard.model_audit._base import ModelAuditContext
from tabguard.model_audit._importance import FeatureEffect
from tabguard.model_audit._model import AuditedModel
from tabguard.model_audit._shap import ShapResult
from tabguard.reports import Finding, PlotSpec, Section, Table


def effect_findings(
    eff: FeatureEffect,
    pdv: np.ndarray,
    avg: float,
    blast_warning: float,
    model: AuditedModel,
    min_shift: float,
) -> list[Finding]:
    """Findings of one feature's effect: steep or gameable effects, the blast radius of its
    most favourable value (warning from ``blast_warning``), a declared neutral value that moves
    the average score by ``min_shift`` or more."""
    out: list[Finding] = []
    span = float(pdv.max() - pdv.min()) if len(pdv) else 0.0
    if (
        eff.declared_neutral_shift is not None
        and abs(eff.declared_neutral_shift) >= min_shift
        and abs(eff.declared_neutral_shift) > 0.25 * span
    ):
        out.append(
            Finding(
                check="neutral_value",
                severity="warning",
                message=(
                    f"{eff.feature}: the contract's neutral value {eff.declared_neutral!r} "
                    f"moves the average score by {eff.declared_neutral_shift:+.3f} "
                    f"({abs(eff.declared_neutral_shift) / span:.0%} of the feature's range "
                    f"of effect); the model's neutral value is {eff.neutral!r}."
                ),
                features=[eff.feature],
                values=[eff.declared_neutral],
                evidence={
                    "declared_neutral": eff.declared_neutral,
                    "declared_neutral_shift": eff.declared_neutral_shift,
                    "computed_neutral": eff.neutral,
                    "pd_span": span,
                    "average_score": avg,
                },
                recommendation=f"set features.{eff.feature}.neutral to {eff.neutral!r}",
            )
        )
    if eff.blast is not None and eff.blast.get("value") is not None:
        b = eff.blast
        sev = "warning" if b["to_approve"] >= blast_warning else "info"
        out.append(
            Finding(
                check="blast_radius",
                severity=sev,
                message=(
                    f"{eff.feature} (gameable): if every applicant declared "
                    f"{b['value']!r}, {b['changed']:.1%} of decisions would change "
                    f"({b['to_approve']:.1%} to approval, {b['to_deny']:.1%} to denial)."
                ),
                features=[eff.feature],
                values=[b["value"]],
                evidence={**b, "mean_abs_shap": eff.mean_abs_shap, "direction": eff.direction},
                recommendation=(
                    "coarse bins, a clip range, a neutral value or the fallback model limit "
                    "what declaring this value buys"
                )
                if sev == "warning"
                else None,
            )
        )
    return out


def importance_sections(
    ctx: ModelAuditContext,
    effects: list[FeatureEffect],
    sh: ShapResult,
    order: np.ndarray,
    avg: float,
) -> list[Section]:
    """The report sections: SHAP importance, partial dependence, neutral values, blast radius."""
    model = ctx.model
    top = [int(j) for j in order[:12]]
    colors = []
    for j in top:
        x = sh.X[:, j].astype(float)
        lo, hi = np.nanpercentile(x, 5), np.nanpercentile(x, 95)
        colors.append(np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.full(len(x), 0.5))
    bees = PlotSpec(
        kind="beeswarm",
        title="Directional importance (SHAP)",
        data={
            "features": [model.feature_names[j] for j in top],
            "shap": [sh.values[:, j] for j in top],
            "color": colors,
            "xlabel": f"SHAP value ({sh.output} of the positive class)",
            "figsize": (7.0, 0.35 * len(top) + 1.2),
        },
        caption=(
            "Each dot is one applicant; right of zero the feature raises the score "
            f"(towards {model.contract.decision.positive_means} when positive)."
        ),
    )
    rows = []
    for e in effects:
        rows.append(
            [
                e.feature,
                "yes" if e.gameable else "",
                e.mean_abs_shap,
                e.direction,
                e.neutral,
                e.declared_neutral,
                e.declared_neutral_shift,
                f"{e.steepest[0]!r} → {e.steepest[1]!r} ({e.steepest[2]:+.3f})"
                if e.steepest
                else "",
                f"{e.favourable_range[0]!r} … {e.favourable_range[1]!r}"
                if e.favourable_range
                else ", ".join(repr(v) for v in e.favourable_values),
            ]
        )
    table = Table(
        columns=[
            "feature",
            "gameable",
            "mean |SHAP|",
            "direction",
            "computed neutral",
            "declared neutral",
            "declared neutral shift",
            "steepest step",
            "most favourable values",
        ],
        rows=rows,
    )
    plots = []
    show = [e for e in effects if e.grid][:8]
    show += [e for e in effects if e.gameable and e.grid and e not in show]
    for e in show:
        ordered = model.categories(e.feature) is None and not isinstance(e.grid[0], bool)
        if ordered:
            plots.append(
                PlotSpec(
                    kind="line",
                    title=f"Partial dependence: {e.feature}",
                    data={
                        "x": [float(v) for v in e.grid],
                        "series": {"average score": e.pd},
                        "hline": avg,
                        "vlines": [float(e.declared_neutral)]
                        if isinstance(e.declared_neutral, int | float)
                        and not isinstance(e.declared_neutral, bool)
                        else [],
                        "xlabel": e.feature,
                        "ylabel": "average P(positive)",
                        "logx": _wide(e.grid),
                    },
                    caption="Dashed line: average score; dotted: the contract's neutral value.",
                )
            )
        else:
            plots.append(
                PlotSpec(
                    kind="bar",
                    title=f"Partial dependence: {e.feature}",
                    data={
                        "labels": [str(v) for v in e.grid],
                        "series": {"average score": e.pd},
                        "hline": avg,
                        "ylabel": "average P(positive)",
                    },
                )
            )
    blast_rows = [
        [
            e.feature,
            e.blast["value"],
            e.blast["changed"],
            e.blast["to_approve"],
            e.blast["to_deny"],
        ]
        for e in effects
        if e.blast is not None
    ]
    text = [
        f"SHAP values of {len(sh.X)} reference rows ({sh.method} explainer); partial "
        "dependence on a sample of reference rows through the model's own encoding. "
        f"Average score: {avg:.3f}.",
        "The computed neutral value is the grid value whose average score is closest to "
        "the overall average; the declared neutral shift is the average score at the "
        "contract's neutral value minus the overall average.",
    ]
    sections = [
        Section(
            title="Directional importance and partial dependence (M1)",
            text=text,
            tables=[table],
            plots=[bees, *plots],
        )
    ]
    if blast_rows:
        sections.append(
            Section(
                title="Blast radius of gameable features (M1)",
                text=[
                    "Share of decisions that change when every applicant sets one gameable "
                    "feature to its most favourable value within the contract's range."
                ],
                tables=[
                    Table(
                        columns=[
                            "feature",
                            "most favourable value",
                            "decisions changed",
                            "to approval",
                            "to denial",
                        ],
                        rows=blast_rows,
                    )
                ],
            )
        )
    return sections


def _wide(grid: list[Any]) -> bool:
    """Log x-axis for positive values spanning several orders of magnitude."""
    vals = [float(v) for v in grid if float(v) > 0]
    return bool(vals) and min(float(v) for v in grid) >= 0 and max(vals) / min(vals) > 1e3
