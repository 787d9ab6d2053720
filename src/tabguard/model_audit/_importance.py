"""Directional importance, partial dependence, neutral values and blast radius (M1).

* **Directional importance** (SHAP): mean |SHAP| per feature and the sign of the relation
  between the feature's value and its contribution (Spearman correlation on ordered features;
  the most score-raising and score-lowering categories of unordered ones).
* **Partial dependence** per feature on the model itself (any model: the average score of
  sample rows with the feature set to each grid value, through the model's own encoding).
* **Dangerous ranges**: the steepest step of the partial dependence (where a small change moves
  the average score most) and the range of values that gives the applicant the most favourable
  average score (where an attacker wants to be).
* **Neutral value**: the grid value whose partial dependence is closest to the average score,
  compared with the contract's declared ``neutral``.
* **Blast radius** of each gameable feature: the share of decisions that change, and in which
  direction, when every applicant sets the feature to its most favourable value within the
  contract's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.stats import spearmanr

from tabguard.checks import NON_NEGATIVE, SHARE, CheckOptions, at_least, option
from tabguard.model_audit._base import ModelAuditContext, ModelCheckResult, register_check
from tabguard.model_audit._model import AuditedModel
from tabguard.model_audit._shap import ShapResult, shap_values
from tabguard.reports import Finding


@dataclass
class FeatureEffect:
    """What the audit learned about one feature (M1)."""

    feature: str
    gameable: bool
    mean_abs_shap: float = 0.0
    direction: str = ""
    grid: list[Any] = field(default_factory=list)
    pd: list[float] = field(default_factory=list)
    approvals: list[float] = field(default_factory=list)
    neutral: Any = None
    declared_neutral: Any = None
    declared_neutral_shift: float | None = None
    steepest: tuple[Any, Any, float] | None = None
    favourable_range: tuple[Any, Any] | None = None
    favourable_values: list[Any] = field(default_factory=list)
    blast: dict[str, Any] | None = None


def pd_grid(model: AuditedModel, feature: str, x: np.ndarray, n_points: int = 20) -> list[Any]:
    """Raw grid values for one feature: categories, or quantiles plus the contract bounds."""
    spec = model.contract.features[feature]
    cats = model.categories(feature)
    if cats is not None:
        return list(cats)
    if spec.type == "boolean":
        return [False, True]
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return []
    distinct = np.unique(finite)
    if distinct.size <= n_points:
        values = distinct.tolist()
    else:
        values = np.unique(np.quantile(finite, np.linspace(0, 1, n_points))).tolist()
    for bound in (spec.min, spec.max, spec.neutral):
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            values.append(float(bound))
    out = sorted(set(values))
    if spec.type == "integer" or all(float(v).is_integer() for v in distinct[:50]):
        out = sorted({float(round(v)) for v in out})
    return [model.decode_value(feature, v) if cats is None else v for v in out]


def partial_dependence(
    model: AuditedModel, X: np.ndarray, feature: str, grid: list[Any]
) -> tuple[list[Any], np.ndarray]:
    """Scores of rows ``X`` with ``feature`` set to each reachable grid value.

    Returns
    -------
    grid : list
        The grid values kept (raw), those the model's encoding can represent.
    scores : ndarray of shape (len(grid), n_rows)
    """
    j = model.column(feature)
    kept, codes = [], []
    for v in grid:
        try:
            c = model.encode_value(feature, v)
        except (ValueError, TypeError):
            continue
        if math.isfinite(c):
            kept.append(v)
            codes.append(c)
    if not kept:
        return [], np.empty((0, len(X)))
    k = len(kept)
    Xs = np.repeat(X[None, :, :], k, axis=0)
    Xs[:, :, j] = np.asarray(codes)[:, None]
    S = model.predict_matrix(Xs.reshape(-1, X.shape[1])).reshape(k, len(X))
    return kept, S


def _in_contract(model: AuditedModel, feature: str, v: Any) -> bool:
    spec = model.contract.features[feature]
    if spec.type == "category":
        return any(str(v) == str(c) for c in spec.categories or [])
    if spec.type == "boolean" or isinstance(v, bool):
        return True
    fv = float(v)
    return (spec.min is None or fv >= spec.min) and (spec.max is None or fv <= spec.max)


def _direction(shap_col: np.ndarray, x: np.ndarray, ordered: bool) -> str:
    ok = np.isfinite(x) & np.isfinite(shap_col)
    if not ordered or ok.sum() < 5 or np.ptp(x[ok]) == 0:
        return "by category" if not ordered else "none"
    if np.ptp(shap_col[ok]) == 0:
        return "none"
    rho = spearmanr(x[ok], shap_col[ok]).statistic
    if not np.isfinite(rho) or abs(rho) < 0.1:
        return "mixed"
    return "higher raises score" if rho > 0 else "higher lowers score"


@dataclass(frozen=True)
class ImportanceOptions(CheckOptions):
    """Settings of the importance check (``options={"importance": {...}}``)."""

    check: ClassVar[str] = "importance"

    shap_rows: int = option(300, "reference rows explained with SHAP", at_least(1))
    pd_rows: int = option(300, "reference rows averaged in partial dependence", at_least(1))
    blast_rows: int = option(
        3000, "reference rows whose decisions the blast radius counts", at_least(1)
    )
    grid_points: int = option(20, "values per feature in partial dependence", at_least(2))
    blast_warning: float = option(
        0.05,
        "share of decisions one gameable feature's best value changes from which the blast "
        "radius is a warning",
        SHARE,
    )
    neutral_tolerance: float = option(
        0.01,
        "average-score shift from which a declared neutral value is not neutral (and a "
        "quarter of the feature's range of effect)",
        NON_NEGATIVE,
    )


@register_check
class ImportanceCheck:
    """M1: SHAP directional importance, partial dependence, neutral values, blast radius."""

    name: ClassVar[str] = "importance"
    order: ClassVar[int] = 20
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = ImportanceOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Compute the effects of every model feature; ``_importance_report`` words them."""
        from tabguard.model_audit._importance_report import effect_findings, importance_sections

        o = ctx.opts(ImportanceOptions)
        model = ctx.model
        n_shap, n_pd, n_blast, n_grid = o.shap_rows, o.pd_rows, o.blast_rows, o.grid_points
        blast_warning = o.blast_warning
        min_shift = o.neutral_tolerance
        rows = ctx.sample(n_shap, key="shap")
        bg = ctx.X[ctx.sample(80, key="background")]
        with ctx.progress.stage("importance: SHAP values", total=None):
            sh: ShapResult = shap_values(model, ctx.X[rows], bg, random_state=ctx.random_state)
        ctx.cache["shap"] = sh
        mean_abs = np.abs(sh.values).mean(axis=0)
        order = np.argsort(-mean_abs)
        pd_rows = ctx.X[ctx.sample(n_pd, key="pd")]
        # partial dependence is compared with the mean score of the same rows (a sample's mean
        # differs from the population's by more than many features' effects)
        avg = float(ctx.scores[ctx.sample(n_pd, key="pd")].mean())
        blast_rows = ctx.sample(n_blast, key="blast")
        gameable = set(model.contract.gameable_features())
        effects: list[FeatureEffect] = []
        findings: list[Finding] = []
        with ctx.progress.stage("importance: partial dependence", total=len(order)) as st:
            for j in order:
                st.advance()
                f = model.feature_names[j]
                spec = model.contract.features[f]
                ordered = model.categories(f) is None
                eff = FeatureEffect(f, f in gameable, float(mean_abs[j]))
                eff.direction = _direction(sh.values[:, j], sh.X[:, j], ordered)
                grid, S = partial_dependence(
                    model, pd_rows, f, pd_grid(model, f, ctx.X[:, j], n_grid)
                )
                if not grid:
                    effects.append(eff)
                    continue
                pdv = S.mean(axis=1)
                eff.grid, eff.pd = grid, pdv.tolist()
                eff.approvals = model.approve(S).mean(axis=1).tolist()
                self._ranges(eff, model, avg)
                if spec.neutral is not None:
                    _, Sn = partial_dependence(model, pd_rows, f, [spec.neutral])
                    if len(Sn):
                        eff.declared_neutral = spec.neutral
                        eff.declared_neutral_shift = float(Sn.mean() - avg)
                if f in gameable:
                    eff.blast = self._blast(ctx, f, grid, S, blast_rows)
                effects.append(eff)
                findings.extend(effect_findings(eff, pdv, avg, blast_warning, model, min_shift))
        ctx.cache["effects"] = effects
        return ModelCheckResult(
            findings=findings,
            sections=importance_sections(ctx, effects, sh, order, avg),
            summary={
                "shap_method": sh.method,
                "shap_output": sh.output,
                "top_features": [model.feature_names[j] for j in order[:10]],
                "blast_radius": {e.feature: e.blast for e in effects if e.blast is not None},
            },
        )

    @staticmethod
    def _ranges(eff: FeatureEffect, model: AuditedModel, avg: float) -> None:
        pdv = np.asarray(eff.pd)
        grid = eff.grid
        # neutral: the value whose average score is closest to the overall average score
        eff.neutral = grid[int(np.argmin(np.abs(pdv - avg)))]
        if len(grid) < 2:
            return
        span = float(pdv.max() - pdv.min())
        better = -model.favourable_sign() * pdv  # lower is better for the applicant
        best = float(better.min())
        zone = [g for g, b in zip(grid, better, strict=True) if b <= best + 0.1 * span]
        if model.categories(eff.feature) is None and not isinstance(grid[0], bool):
            eff.favourable_range = (min(zone), max(zone))
            steps = np.abs(np.diff(pdv))
            k = int(np.argmax(steps))
            eff.steepest = (grid[k], grid[k + 1], float(pdv[k + 1] - pdv[k]))
        else:
            eff.favourable_values = zone

    @staticmethod
    def _blast(
        ctx: ModelAuditContext, f: str, grid: list[Any], S: np.ndarray, rows: np.ndarray
    ) -> dict[str, Any]:
        """Decisions changed when every applicant sets ``f`` to its most favourable value."""
        model = ctx.model
        allowed = [i for i, v in enumerate(grid) if _in_contract(model, f, v)]
        if not allowed:
            return {"value": None, "changed": 0.0, "to_approve": 0.0, "to_deny": 0.0}
        approvals = model.approve(S[allowed]).mean(axis=1)
        best = allowed[int(np.argmax(approvals))]
        value = grid[best]
        X = ctx.X[rows].copy()
        X[:, model.column(f)] = model.encode_value(f, value)
        after = model.approve(model.predict_matrix(X))
        before = ctx.approve[rows]
        return {
            "value": value,
            "changed": float(np.mean(after != before)),
            "to_approve": float(np.mean(after & ~before)),
            "to_deny": float(np.mean(~after & before)),
            "denied_before": float(np.mean(~before)),
            "rows": len(rows),
        }
