"""White-hat attacks (M3): minimal decision-flipping changes and surrogate extraction.

**Gameability.** For each denied applicant the audit searches the smallest change of one or two
gameable features, within the contract's ranges, that turns the decision into an approval.
A change's size is measured in population quantiles of the feature (moving from the 30th to
the 80th percentile costs 0.5; a category change costs 1), so features with different units
compare. The **gameability rate** is the share of denied applicants who can flip that way.

**Surrogate extraction.** An attacker who can query the model builds a copy: queries are drawn
from the features' marginal distributions (what a fraudster can guess about applicants), the
answers are the scores or only the decisions, and a gradient-boosting surrogate is fitted on
them. Its fidelity - agreement with the model's decisions on real held-out applicants - is
measured for growing numbers of queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, ClassVar

import numpy as np

from tabguard.checks import SHARE, CheckOptions, at_least, option
from tabguard.model_audit._base import ModelAuditContext, ModelCheckResult, register_check
from tabguard.model_audit._model import AuditedModel


@dataclass
class Flip:
    """The cheapest decision-flipping change found for one denied applicant."""

    row: int
    changes: dict[str, tuple[Any, Any]]  # feature -> (from, to)
    cost: float
    score_before: float
    score_after: float


@dataclass
class GameabilityResult:
    """Outcome of the minimal-change search.

    Attributes
    ----------
    denied : int
        Denied applicants searched.
    flips : list of Flip
        One per applicant who can flip (others cannot within one or two gameable features).
    rate : float
        Gameability rate: ``len(flips) / denied``.
    single_rate : float
        Share that can flip by changing one feature.
    by_feature : dict
        How often each gameable feature is part of the cheapest flip.
    """

    denied: int
    flips: list[Flip] = field(default_factory=list)
    rate: float = 0.0
    single_rate: float = 0.0
    by_feature: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)


def _value_grid(model: AuditedModel, feature: str, x: np.ndarray, n: int) -> list[Any]:
    """Raw values an applicant could declare: quantiles of clean data and the range bounds."""
    spec = model.contract.features[feature]
    cats = model.categories(feature)
    if cats is not None:
        return list(cats)
    if spec.type == "boolean":
        return [False, True]
    finite = x[np.isfinite(x)]
    vals = (
        set(np.unique(np.quantile(finite, np.linspace(0, 1, n))).tolist()) if finite.size else set()
    )
    lo = spec.min
    hi = spec.clip[1] if spec.clip is not None else spec.max
    for b in (lo, hi):
        if b is not None:
            vals.add(float(b))
    out = sorted(
        v
        for v in vals
        if (spec.min is None or v >= spec.min) and (spec.max is None or v <= spec.max)
    )
    if spec.type == "integer":
        out = sorted({float(round(v)) for v in out})
    return [model.decode_value(feature, v) for v in out]


def minimal_flips(
    model: AuditedModel,
    X: np.ndarray,
    rows: np.ndarray,
    X_ref: np.ndarray,
    *,
    grid_points: int = 21,
    pair_points: int = 9,
    pairs: bool = True,
) -> GameabilityResult:
    """Search the cheapest flip to approval for denied rows ``X`` (positions ``rows``).

    Parameters
    ----------
    model : AuditedModel
    X : ndarray
        Model matrix of the denied applicants.
    rows : ndarray of int
        Their positions in the reference data (reported).
    X_ref : ndarray
        Reference matrix (the population that defines quantile distances).
    grid_points, pair_points : int
        Values tried per feature alone and in pairs.
    pairs : bool
        Also try two features at once for applicants no single change flips.
    """
    feats = [f for f in model.contract.gameable_features() if f in model.feature_names]
    res = GameabilityResult(denied=len(X), features=feats)
    if not feats or len(X) == 0:
        return res
    cols = {f: model.column(f) for f in feats}
    grids: dict[str, tuple[list[Any], np.ndarray]] = {}
    for f in feats:
        raw = _value_grid(model, f, X_ref[:, cols[f]], grid_points)
        codes = []
        kept = []
        for v in raw:
            c = model.encode_value(f, v)
            if math.isfinite(c):
                kept.append(v)
                codes.append(c)
        grids[f] = (kept, np.asarray(codes, dtype=float))
    base = model.predict_matrix(X)
    best_cost = np.full(len(X), np.inf)
    best: dict[int, Flip] = {}

    def cost_of(f: str, codes: np.ndarray) -> np.ndarray:
        """(n_values, n_rows) quantile distance between each row's value and each code."""
        j = cols[f]
        ref = np.sort(X_ref[:, j][np.isfinite(X_ref[:, j])])
        if model.categories(f) is not None or model.contract.features[f].type == "boolean":
            return (codes[:, None] != X[None, :, j]).astype(float)

        def q(v: np.ndarray) -> np.ndarray:
            lo = np.searchsorted(ref, v, side="left")
            hi = np.searchsorted(ref, v, side="right")
            return (lo + hi) / (2.0 * max(len(ref), 1))

        d = np.abs(q(codes)[:, None] - q(X[:, j])[None, :])
        # break ties between values in the same quantile by raw distance (tiny weight)
        span = max(float(ref[-1] - ref[0]), 1.0) if len(ref) else 1.0
        return d + 1e-6 * np.abs(codes[:, None] - X[None, :, j]) / span

    for f in feats:
        raw, fcodes = grids[f]
        if len(fcodes) == 0:
            continue
        j = cols[f]
        k = len(fcodes)
        Xs = np.repeat(X[None], k, axis=0)
        Xs[:, :, j] = fcodes[:, None]
        S = model.predict_matrix(Xs.reshape(-1, X.shape[1])).reshape(k, len(X))
        ok = model.approve(S)
        cost = np.where(ok, cost_of(f, fcodes), np.inf)
        kbest = np.argmin(cost, axis=0)
        cbest = cost[kbest, np.arange(len(X))]
        for i in np.flatnonzero(cbest < best_cost).tolist():
            best_cost[i] = cbest[i]
            best[i] = Flip(
                int(rows[i]),
                {f: (model.decode_value(f, X[i, j]), raw[kbest[i]])},
                float(cbest[i]),
                float(base[i]),
                float(S[kbest[i], i]),
            )
    single = set(best)
    if pairs and len(feats) >= 2:
        todo = np.flatnonzero(~np.isfinite(best_cost))
        if todo.size:
            Xt = X[todo]
            for f1, f2 in combinations(feats, 2):
                g1 = _thin(grids[f1], pair_points)
                g2 = _thin(grids[f2], pair_points)
                if not len(g1[1]) or not len(g2[1]):
                    continue
                combos = [(a, b) for a in range(len(g1[1])) for b in range(len(g2[1]))]
                Xs = np.repeat(Xt[None], len(combos), axis=0)
                Xs[:, :, cols[f1]] = np.asarray([g1[1][a] for a, _ in combos])[:, None]
                Xs[:, :, cols[f2]] = np.asarray([g2[1][b] for _, b in combos])[:, None]
                S = model.predict_matrix(Xs.reshape(-1, X.shape[1])).reshape(len(combos), len(todo))
                ok = model.approve(S)
                c1 = cost_of(f1, g1[1])[:, todo]
                c2 = cost_of(f2, g2[1])[:, todo]
                cost = np.array([c1[a] + c2[b] for a, b in combos])
                cost = np.where(ok, cost, np.inf)
                kb = np.argmin(cost, axis=0)
                cb = cost[kb, np.arange(len(todo))]
                for t in np.flatnonzero(cb < best_cost[todo]):
                    i = todo[t]
                    a, b = combos[kb[t]]
                    best_cost[i] = cb[t]
                    best[i] = Flip(
                        int(rows[i]),
                        {
                            f1: (model.decode_value(f1, X[i, cols[f1]]), g1[0][a]),
                            f2: (model.decode_value(f2, X[i, cols[f2]]), g2[0][b]),
                        },
                        float(cb[t]),
                        float(base[i]),
                        float(S[kb[t], t]),
                    )
    res.flips = [best[i] for i in sorted(best)]
    res.rate = len(best) / len(X)
    res.single_rate = len(single) / len(X)
    for fl in res.flips:
        for f in fl.changes:
            res.by_feature[f] = res.by_feature.get(f, 0) + 1
    return res


def _thin(grid: tuple[list[Any], np.ndarray], n: int) -> tuple[list[Any], np.ndarray]:
    raw, codes = grid
    if len(codes) <= n:
        return raw, codes
    idx = np.unique(np.round(np.linspace(0, len(codes) - 1, n)).astype(int))
    return [raw[i] for i in idx], codes[idx]


@dataclass(frozen=True)
class GameabilityOptions(CheckOptions):
    """Settings of the gameability check (``options={"gameability": {...}}``)."""

    check: ClassVar[str] = "gameability"

    rows: int = option(300, "denied reference applicants searched for a flip", at_least(1))
    warning_rate: float = option(
        0.2,
        "share of denied applicants who can flip the decision through gameable features from "
        "which the finding is a warning",
        SHARE,
    )
    grid_points: int = option(21, "values tried per gameable feature", at_least(2))
    pair_points: int = option(9, "values tried per feature of a gameable pair", at_least(2))


@register_check
class GameabilityCheck:
    """M3: minimal decision-flipping change on gameable features; the gameability rate."""

    name: ClassVar[str] = "gameability"
    order: ClassVar[int] = 50
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = GameabilityOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Search flips for a sample of denied applicants; ``_attacks_report`` words them."""
        from tabguard.model_audit._attacks_report import gameability_report

        o = ctx.opts(GameabilityOptions)
        denied = np.flatnonzero(~ctx.approve)
        rng = np.random.default_rng(ctx.random_state)
        rows = np.sort(rng.permutation(denied)[: o.rows])
        with ctx.progress.stage("gameability: minimal flips", total=None):
            res = minimal_flips(
                ctx.model,
                ctx.X[rows],
                rows,
                ctx.X,
                grid_points=o.grid_points,
                pair_points=o.pair_points,
            )
        ctx.cache["gameability"] = res
        return gameability_report(res, o.warning_rate)


# --------------------------------------------------------------------------------------------
# Surrogate extraction
# --------------------------------------------------------------------------------------------
def marginal_queries(X_ref: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Synthetic applicants: each feature drawn independently from its clean distribution."""
    cols = [X_ref[rng.integers(0, len(X_ref), size=n), j] for j in range(X_ref.shape[1])]
    return np.column_stack(cols)


def extraction_curve(
    model: AuditedModel,
    X_ref: np.ndarray,
    X_eval: np.ndarray,
    budgets: list[int],
    *,
    random_state: int = 0,
) -> list[dict[str, float]]:
    """Fidelity of surrogates fitted on ``budget`` queries, for score and decision answers.

    Returns
    -------
    list of dict
        ``{"queries", "fidelity_scores", "fidelity_decisions", "baseline"}`` per budget; the
        baseline is the agreement of always answering the majority decision.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    rng = np.random.default_rng(random_state)
    Q = marginal_queries(X_ref, max(budgets), rng)
    sq = model.predict_matrix(Q)
    dq = model.approve(sq)
    target = model.approve(model.predict_matrix(X_eval))
    baseline = float(max(target.mean(), 1 - target.mean()))
    logit = np.log(np.clip(sq, 1e-6, 1 - 1e-6) / np.clip(1 - sq, 1e-6, 1))
    thr = model.threshold
    thr_logit = math.log(min(max(thr, 1e-6), 1 - 1e-6) / (1 - min(max(thr, 1e-6), 1 - 1e-6)))
    # A column missing on every query tells the surrogate nothing, and scikit-learn's binning
    # fails on it ("window shape cannot be larger than input array shape"): a reference
    # column whose values all broke the contract's coding, say. A constant stands in for it.
    empty = np.isnan(Q).all(axis=0)
    if empty.any():
        Q, X_eval = Q.copy(), X_eval.copy()
        Q[:, empty], X_eval[:, empty] = 0.0, 0.0
    out = []
    for b in sorted(budgets):
        reg = HistGradientBoostingRegressor(max_iter=150, random_state=random_state)
        reg.fit(Q[:b], logit[:b])
        pred = reg.predict(X_eval)
        approve_s = pred < thr_logit if model.positive_means_deny else pred >= thr_logit
        if dq[:b].all() or (~dq[:b]).all():
            approve_d = np.full(len(X_eval), bool(dq[0]))
        else:
            clf = HistGradientBoostingClassifier(max_iter=150, random_state=random_state)
            clf.fit(Q[:b], dq[:b])
            approve_d = clf.predict(X_eval).astype(bool)
        out.append(
            {
                "queries": b,
                "fidelity_scores": float(np.mean(approve_s == target)),
                "fidelity_decisions": float(np.mean(approve_d == target)),
                "baseline": baseline,
            }
        )
    return out


@dataclass(frozen=True)
class ExtractionOptions(CheckOptions):
    """Settings of the extraction check (``options={"extraction": {...}}``)."""

    check: ClassVar[str] = "extraction"

    budgets: tuple[int, ...] = option(
        (100, 300, 1000, 3000, 10000),
        "query budgets of the white-hat surrogates (the fidelity curve's points)",
        at_least(10),
    )
    eval_rows: int = option(
        3000, "reference rows on which surrogate fidelity is measured", at_least(10)
    )


@register_check
class ExtractionCheck:
    """M3: white-hat surrogate extraction, fidelity vs number of queries."""

    name: ClassVar[str] = "extraction"
    order: ClassVar[int] = 60
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = ExtractionOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Fit surrogates on growing query budgets; ``_attacks_report`` words the curve."""
        from tabguard.model_audit._attacks_report import extraction_report

        o = ctx.opts(ExtractionOptions)
        eval_rows = ctx.sample(o.eval_rows, key="extraction")
        with ctx.progress.stage("extraction: surrogates", total=None):
            curve = extraction_curve(
                ctx.model, ctx.X, ctx.X[eval_rows], list(o.budgets), random_state=ctx.random_state
            )
        return extraction_report(curve, len(eval_rows))
