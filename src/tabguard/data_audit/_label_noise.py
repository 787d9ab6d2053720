"""D3 label-noise suspects (cleanlab confident learning on out-of-fold probabilities).

Every real label set is noisy: in credit data many clients who look safe default. cleanlab's
:func:`cleanlab.filter.find_label_issues` lists the rows whose label disagrees with what the rest
of the data predicts; on clean credit data it lists thousands. Those rows are reported for review
and handed to RONI, but they are **not** poisoning suspects on that ground alone.

Why not: labels flipped in place, at random within a class or a segment, leave data that is
distributed exactly like data whose outcome rate is lower in that region: ``P(y | x)`` changes,
nothing else does. Without a trusted reference no statistic of ``(x, y)`` can tell the two apart,
and a test calibrated on the same data absorbs the flips. Flips are detectable when they come
with evidence: a trigger (the trigger scan), or copies of rows with the opposite label (the
near-duplicate check). The table below still compares rows with an unlikely label to what the
model's probabilities expect, as a diagnostic.

**With a trusted sample** (``audit_data(..., trusted=df)``, ``--trusted FILE``: rows whose labels
were vetted) the question becomes testable. Models fitted on the trusted rows only (so flipped
labels cannot teach them) give every audited row the probability of the *other* label; a model
of the audited labels, fitted on many more rows, gives its own, and a row's score contrasts the
two (:func:`trusted_scores`: where labels were rewritten the audited model has learnt them and
the trusted one has not). Each row's score is compared with the scores of held-out trusted
rows carrying the same label, scored the same way (label-conditional, "Mondrian", conformal
p-values). On clean data a row's p-value is
uniform, so flagging ``p <= trusted_level`` flags that share of clean rows, whatever the model's
calibration error; a flipped row whose true label the trusted model predicts confidently gets a
small p-value. Whether flipping happened at all is tested on the count of flagged rows against
what the level and the size of the trusted sample explain (:func:`flag_excess`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from tabguard._plain import plain
from tabguard.checks import CheckOptions, at_least, interval, option
from tabguard.contract import Contract, check_columns, validate_frame
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._confident_learning import binary_label_issues
from tabguard.data_audit._context_model import (
    cross_fitted_proba,
    fit_context_model,
    instrument_rounds,
    out_of_fold_proba,
    predict,
)
from tabguard.data_audit._entity import unit_codes
from tabguard.data_audit._matrix import build_matrix
from tabguard.errors import DataError, TabguardError
from tabguard.io import check_labels


@dataclass(frozen=True)
class LabelNoiseOptions(CheckOptions):
    """Settings of the label-noise check (``options={"label_noise": {...}}``)."""

    check: ClassVar[str] = "label_noise"

    thresholds: tuple[float, ...] = option(
        (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4),
        "probabilities of the given label under which rows are counted in the diagnostic "
        "table (observed against expected)",
        interval(0.0, 0.5, "left"),
    )
    listed: int = option(
        2000, "label issues listed in the finding (all are handed to RONI)", at_least(0)
    )
    trusted_level: float = option(
        0.01,
        "with a trusted sample: a row is flagged when its label's conformal p-value is at most "
        "this; it is the share of clean rows flagged (1 % keeps clean-data flags few while "
        "confident flips reach p-values of 1/(trusted rows of the label + 1))",
        interval(0.0, 0.5, "neither"),
    )
    trusted_folds: int = option(
        5,
        "cross-fitting folds on the trusted rows: each trusted row is scored by a model that "
        "never saw it (5: each model learns from 80 % of a small sample)",
        at_least(2),
    )
    trusted_repeats: int = option(
        5,
        "rounds of cross-fitting averaged into each row's score (models of a few hundred rows "
        "are noisy; 5 rounds raised the recall of confident flips on credit from 0.21 to 0.32 "
        "with 5 % trusted, 0.31 to 0.36 with 10 %)",
        at_least(1),
    )
    trusted_rounds: int = option(
        200,
        "boosting rounds of the models fitted on the trusted rows (4-leaf trees at rate 0.05: "
        "small samples call for shallow trees learning slowly)",
        at_least(1),
    )
    trusted_contrast: float = option(
        0.5,
        "weight of the audited labels' model in a row's score: the trusted model's log-odds of "
        "the other label less this times the audited-label model's (0: the trusted model "
        "alone; 1: their log-odds ratio, the flip posterior's ranking; 0.5: both views, see "
        "trusted_scores); with 5-7 % trusted on credit it took confident flips to precision "
        "and recall >= 0.5 in 4 of 4 development cases, against 1 of 4 with 0",
        interval(0.0, 1.0, "both"),
    )
    min_trusted_rows: int = option(
        100,
        "trusted rows required (fewer is an error): below ~100 rows the trusted models learn "
        "little and no p-value reaches 1 %",
        at_least(2),
    )
    min_trusted_per_label: int = option(
        20,
        "trusted rows of each label required (fewer is an error): a label's p-values are "
        "measured against the trusted rows carrying it",
        at_least(1),
    )
    trusted_max_level: float = option(
        0.03,
        "highest level the flags are raised to when they show flipping and at least "
        "trusted_min_precision of them are estimated to be flips (more flips found; 3 %: "
        "beyond it natural surprises outnumber flips on credit data)",
        interval(0.0, 0.5, "neither"),
    )
    trusted_min_precision: float = option(
        0.5,
        "estimated share of flips among the flags ((flagged - expected - its sd) / flagged) a "
        "raised level must keep",
        interval(0.0, 1.0, "neither"),
    )
    trusted_shift_alpha: float = option(
        0.01,
        "family-wise error rate of the label-rate comparison with the trusted sample (all rows "
        "and each category value, Bonferroni): random or segment flips that no row-level test "
        "can single out still move a rate",
        interval(0.0, 1.0, "neither"),
    )
    trusted_z: float = option(
        3.09,
        "z-score of the count of flagged rows over what the level explains (counting the "
        "trusted sample's own sampling error) above which the finding is critical: one-sided "
        "p = 0.001, so a clean audit with a trusted sample fails once in a thousand",
        interval(0.0, None, "neither"),
    )


def oof_probabilities(ctx: AuditContext) -> np.ndarray:
    """Out-of-fold P(positive) for every row (cached for RONI and reports)."""
    if "oof" not in ctx.cache:
        m = build_matrix(ctx)
        cat = [j for j in range(len(m.names)) if not m.ordinal[j]]
        rounds, lr = instrument_rounds(ctx.n_rows, 120)
        ctx.cache["oof"] = out_of_fold_proba(
            m.raw,
            ctx.y.astype(float),
            cat,
            max_train_rows=60_000,
            rounds=rounds,
            learning_rate=lr,
            random_state=ctx.random_state,
        )
    oof: np.ndarray = ctx.cache["oof"]
    return oof


def excess_disagreement(
    p: np.ndarray, y: np.ndarray, thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """Observed vs expected count of rows whose label's probability is below each threshold."""
    s = np.where(y == 1, p, 1.0 - p)
    out = []
    for t in thresholds:
        pi = p * (p < t) + (1.0 - p) * ((1.0 - p) < t)
        obs = float((s < t).sum())
        exp = float(pi.sum())
        var = float((pi * (1.0 - pi)).sum())
        z = (obs - exp) / math.sqrt(var) if var > 0 else 0.0
        out.append(
            {
                "threshold": t,
                "observed": obs,
                "expected": exp,
                "z": z,
                "precision": (obs - exp) / obs if obs else 0.0,
            }
        )
    return out


TRUSTED_NAME = "trusted sample (--trusted / trusted=)"


def prepare_trusted(
    trusted: pd.DataFrame, contract: Contract, opts: LabelNoiseOptions
) -> pd.DataFrame:
    """Validate a trusted sample against the contract and the size rules; index 0..n-1.

    Raises
    ------
    DataError
        One line naming the option: missing columns or labels, rows breaking the contract
        (a vetted sample satisfies it), or fewer rows than ``min_trusted_rows`` /
        ``min_trusted_per_label``.
    """
    df = trusted.reset_index(drop=True)
    try:
        check_columns(df, contract)
        y = check_labels(df, contract).to_numpy()
    except TabguardError as exc:
        raise DataError(f"{TRUSTED_NAME}: {exc}") from exc
    validation = validate_frame(df, contract)
    if not validation.ok:
        bad = validation.invalid_mask()
        g = validation.groups[0]
        raise DataError(
            f"{TRUSTED_NAME}: {int(bad.sum())} of {len(df)} rows break the contract (e.g. "
            f"{g.field}: {g.rule}, value {g.examples[0] if g.examples else '?'!r} at row "
            f"{int(g.rows[0])}); a trusted sample must satisfy it: fix or drop those rows"
        )
    n_pos = int(y.sum())
    counts = {contract.label.positive: n_pos, "the other label": len(y) - n_pos}
    if len(df) < opts.min_trusted_rows:
        raise DataError(
            f"{TRUSTED_NAME}: {len(df)} rows; at least {opts.min_trusted_rows} are needed "
            "(option label_noise.min_trusted_rows): give a larger vetted sample"
        )
    for label, k in counts.items():
        if k < opts.min_trusted_per_label:
            raise DataError(
                f"{TRUSTED_NAME}: {k} rows with label {label!r}; at least "
                f"{opts.min_trusted_per_label} of each label are needed (option "
                "label_noise.min_trusted_per_label): give a larger vetted sample"
            )
    return df


def conformal_pvalues(
    cal_scores: np.ndarray, cal_labels: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Label-conditional conformal p-values of ``scores`` against the calibration scores.

    ``p = (1 + #{calibration rows with the same label and score >= s}) / (n_label + 1)``: when
    a row and the calibration rows of its label are exchangeable (clean data, a random trusted
    sample), ``P(p <= a) <= a`` for every ``a``, whatever the model. A label without
    calibration rows gives p = 1 (no evidence).
    """
    out = np.ones(len(scores), dtype=float)
    for label in np.unique(labels):
        cal = np.sort(cal_scores[cal_labels == label])
        sel = labels == label
        if len(cal) == 0:
            continue
        at_least_as_high = len(cal) - np.searchsorted(cal, scores[sel], side="left")
        out[sel] = (1.0 + at_least_as_high) / (len(cal) + 1.0)
    return out


def flag_improbable(pvalues: np.ndarray, level: float) -> np.ndarray:
    """The decision rule: a row is flagged when its label's p-value is at most ``level``."""
    flagged: np.ndarray = pvalues <= level
    return flagged


def achievable_level(level: float, n_cal: int) -> float:
    """``P(p <= level)`` on clean rows with ``n_cal`` calibration rows: p-values are multiples
    of ``1 / (n_cal + 1)``, so a level below ``1 / (n_cal + 1)`` flags nothing."""
    return math.floor(level * (n_cal + 1) + 1e-9) / (n_cal + 1)


def flag_excess(
    flagged: Sequence[int],
    rows: Sequence[int],
    n_cal: Sequence[int],
    level: float,
    *,
    unit_var: float | None = None,
) -> tuple[float, float]:
    """Expected flags on clean data and the z-score of the observed count, over labels.

    Per label, a clean row is flagged with probability ``a`` (:func:`achievable_level`) given
    an infinite trusted sample; with ``n`` trusted rows the realised rate is itself random
    (Beta: variance ``a(1-a)/(n+2)``), shared by all ``m`` rows, so the count's variance is
    ``m a(1-a) + m^2 a(1-a)/(n+2)``. The second term dominates with small trusted samples:
    it is why a few hundred extra flags on 30,000 rows need a trusted sample of thousands.

    ``unit_var`` (:func:`entity_flag_variance`), when larger, replaces the first term: rows of
    one entity (an account, a buyer) share its effect and are flagged together, so counted
    as independent rows their flags look more significant than they are.

    Returns
    -------
    (expected, z) : tuple of float
        ``z`` is 0 when nothing can be flagged.
    """
    expected = var = 0.0
    if not len(flagged) == len(rows) == len(n_cal):
        raise ValueError("flagged, rows and n_cal need one entry per label")
    row_var = 0.0
    for m, n in zip(rows, n_cal, strict=True):
        a = achievable_level(level, n)
        expected += m * a
        row_var += m * a * (1 - a)
        var += m * m * a * (1 - a) / (n + 2)
    var += row_var if unit_var is None else max(row_var, unit_var)
    observed = float(sum(flagged))
    z = (observed - expected) / math.sqrt(var) if var > 0 else 0.0
    return expected, z


def entity_flag_variance(flags: np.ndarray, y: np.ndarray, entity: np.ndarray) -> float:
    """The flagged count's variance with each entity as one unit of evidence.

    The cluster-robust (sandwich) estimate: each entity's flags less what its rows' labels
    lead to expect at the observed per-label rates, squared and summed, times ``E / (E - 1)``
    for ``E`` entities. Flags spread over many entities give about the binomial variance;
    flags concentrated in a few entities give a much larger one.

    Parameters
    ----------
    flags : ndarray of bool
        Which scored rows are flagged.
    y : ndarray of int
        Their labels (0 or 1).
    entity : ndarray of int
        Their entity codes (0 .. E-1; a row without an entity has a code of its own).

    Returns
    -------
    float
    """
    f = flags.astype(float)
    rate = np.array([f[y == c].mean() if (y == c).any() else 0.0 for c in (0, 1)])
    dev = np.bincount(entity, weights=f - rate[y])
    units = int(np.count_nonzero(np.bincount(entity)))
    return float(units / (units - 1) * np.square(dev).sum()) if units > 1 else 0.0


def _entity_codes(ctx: AuditContext, idx: np.ndarray) -> np.ndarray | None:
    """The contract's entity of the rows ``idx`` as codes, a missing one its own (None
    without an entity)."""
    ent = ctx.contract.entity
    if ent is None or ent not in ctx.data.columns:
        return None
    return unit_codes(ctx.data[ent].to_numpy()[idx])


#: LightGBM settings of the trusted-sample models: a few hundred to a few thousand rows call
#: for shallow trees learning slowly (credit, 5 % trusted, confident flips: P 0.534 R 0.352 at
#: level 1 % and 0.492/0.703 at 2 %, against 0.527/0.324 and 0.433/0.689 with 31-leaf trees).
SMALL_SAMPLE_PARAMS: dict[str, float] = {
    "num_leaves": 4,
    "min_child_samples": 30,
    "learning_rate": 0.05,
}


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    out: np.ndarray = np.log(q / (1.0 - q))
    return out


def trusted_scores(
    X_trusted: np.ndarray,
    y_trusted: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    categorical: list[int],
    *,
    folds: int,
    rounds: int,
    repeats: int = 1,
    random_state: int = 0,
    contrast: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-sample improbability of each trusted and audited row's label.

    In each of ``repeats`` rounds the trusted rows are cut into ``folds`` stratified folds;
    model ``k`` is fitted on the other folds and scores fold ``k`` (calibration scores). Each
    audited row is given a random fold per round too and scored by that fold's model: it is
    treated exactly as one more member of the fold (which the model never saw), so on clean
    data it is exchangeable with the trusted rows, as the p-values need. A row's probability of
    the other label is the mean over the rounds, for trusted and audited rows alike: averaging
    lowers the noise of models fitted on a few hundred rows, which is where the power against
    flips comes from. (Averaging all folds' models for the audited rows instead would make
    their scores less spread than the calibration scores, and the flag rate fall below the
    level.)

    The score is that probability's log-odds, less ``contrast`` times the log-odds a model of
    the *audited* labels gives the other label (:func:`cross_fitted_proba`: out of fold for the
    audited rows, a random fold's model for the trusted rows, so the two stay exchangeable on
    clean data). Flipped labels teach that model their own label where they were written,
    while the trusted model, which never saw them, keeps the true one: the two models disagree
    exactly where labels were rewritten, and nowhere else beyond their noise. With
    ``contrast`` 1 the score is the log-odds ratio of the two, which ranks rows as the
    posterior probability of a flip does when flips are the only difference between the
    populations; 0.5 (the default) is the mean of that ratio and the trusted model's own
    log-odds, keeping the trusted model's view where the audited model is as unsure as it is.

    Returns
    -------
    (cal_scores, scores) : tuple of ndarray
    """
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(random_state)
    cal = np.zeros(len(X_trusted), dtype=float)
    scores = np.zeros(len(X), dtype=float)
    for r in range(repeats):
        assign = rng.integers(folds, size=len(X))
        seed = random_state + 1000 * r
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (train, held) in enumerate(skf.split(np.zeros(len(y_trusted)), y_trusted)):
            model = fit_context_model(
                X_trusted[train],
                y_trusted[train].astype(float),
                categorical,
                rounds=rounds,
                random_state=seed + k,
                params=SMALL_SAMPLE_PARAMS,
            )
            p_held = predict(model, X_trusted[held])
            cal[held] += np.where(y_trusted[held] == 1, 1.0 - p_held, p_held)
            mine = np.flatnonzero(assign == k)
            p = predict(model, X[mine])
            scores[mine] += np.where(y[mine] == 1, 1.0 - p, p)
    cal, scores = _logit(cal / repeats), _logit(scores / repeats)
    if contrast > 0:
        n_rounds, lr = instrument_rounds(len(X), 120)
        p_audited, p_trusted = cross_fitted_proba(
            X,
            y.astype(float),
            categorical,
            X_trusted,
            max_train_rows=60_000,
            rounds=n_rounds,
            learning_rate=lr,
            random_state=random_state,
        )
        cal -= contrast * _logit(np.where(y_trusted == 1, 1.0 - p_trusted, p_trusted))
        scores -= contrast * _logit(np.where(y == 1, 1.0 - p_audited, p_audited))
    return cal, scores


@dataclass
class TrustedResult:
    """Audited rows tested against the trusted sample (data; the report words it).

    Attributes
    ----------
    pvalues : ndarray
        Each scored row's conformal p-value (small: its label is improbable): every audited
        row, or those of ``ctx.cache[TRUSTED_SCOPE]``.
    flagged : ndarray of int
        Rows (of the audited data) with ``p <= level``, smallest p first.
    level : float
        The level rows were flagged at (:func:`choose_level`).
    labels : list of dict
        Per label: ``label``, ``rows``, ``flagged``, ``trusted`` rows, ``achievable`` level.
    expected, z : float
        :func:`flag_excess` of the flagged count.
    curve : list of dict
        Flagged against expected at a few levels (the report's table and plot).
    n_trusted : int
    nominal_level : float
        ``trusted_level``, the false-flag rate on clean data.
    shifts : list of dict
        :func:`label_rate_shifts`: segments whose label rate differs from the trusted sample.
    overlap : int
        Audited rows that are also in the trusted sample (:func:`rows_in_trusted`): vetted,
        not scored.
    overlap_by : str
        How they were matched.
    overlap_scope : int
        The rows in scope when the audit scored a sample of the data (the Spark engine's
        uniform driver sample): ``overlap`` counts among them. 0: every row was in scope.
    entity : str or None
        The contract's entity column when ``z`` counts each entity as one unit of evidence
        (:func:`entity_flag_variance`).
    """

    pvalues: np.ndarray
    flagged: np.ndarray
    level: float
    labels: list[dict[str, object]]
    expected: float
    z: float
    curve: list[dict[str, float]]
    n_trusted: int
    nominal_level: float = 0.01
    shifts: list[dict[str, object]] = field(default_factory=list)
    overlap: int = 0
    overlap_by: str = ""
    overlap_scope: int = 0
    entity: str | None = None


MIN_SEGMENT_TRUSTED = 30


def label_rate_shifts(
    y: np.ndarray,
    y_trusted: np.ndarray,
    segments: Sequence[tuple[str, object, np.ndarray, np.ndarray]],
    alpha: float,
) -> list[dict[str, object]]:
    """Segments whose positive-label rate differs from the trusted sample's (two-proportion
    z-test, Bonferroni over the segments); most significant first.

    ``segments`` holds ``(feature, value, rows of the data, rows of the trusted sample)``
    (feature ``""`` for all rows). Flips at random or inside one segment move the segment's
    rate although no row is improbable; so does a trusted sample from another population.
    """
    from scipy.stats import norm

    if not segments:
        return []
    crit = float(norm.isf(alpha / (2 * len(segments))))
    out: list[dict[str, object]] = []
    for feat, value, rows, trows in segments:
        n_d, n_t = int(rows.sum()), int(trows.sum())
        if n_d == 0 or n_t < MIN_SEGMENT_TRUSTED:
            continue
        k_d, k_t = int(y[rows].sum()), int(y_trusted[trows].sum())
        pooled = (k_d + k_t) / (n_d + n_t)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_d + 1 / n_t))
        if se == 0:
            continue
        z = (k_d / n_d - k_t / n_t) / se
        if abs(z) >= crit:
            out.append(
                {
                    "feature": feat,
                    "value": value,
                    "rows": n_d,
                    "rate": k_d / n_d,
                    "trusted_rows": n_t,
                    "trusted_rate": k_t / n_t,
                    "z": z,
                }
            )
    out.sort(key=lambda d: -abs(float(d["z"])))  # type: ignore[arg-type]
    return out


def _segments(
    ctx: AuditContext, trusted: pd.DataFrame, idx: np.ndarray
) -> list[tuple[str, object, np.ndarray, np.ndarray]]:
    """All rows (of ``idx``), then each value of each category feature (model features)."""
    segs: list[tuple[str, object, np.ndarray, np.ndarray]] = [
        ("", None, np.ones(len(idx), dtype=bool), np.ones(len(trusted), dtype=bool))
    ]
    for f in ctx.transform.categorical_features:
        col, tcol = ctx.data[f].iloc[idx], trusted[f]
        for v in pd.unique(tcol.dropna()):
            segs.append(
                (
                    f,
                    plain(v),
                    (col == v).to_numpy(),
                    (tcol == v).to_numpy(),
                )
            )
    return segs


CURVE_LEVELS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1)


#: ``ctx.cache`` key of the held rows scored against the trusted sample (bool per row; default
#: every row). The Spark engine sets its driver sample's uniform share: the flag counts, their
#: excess over clean data and the label rates are then those of a uniform sample of the data.
TRUSTED_SCOPE = "trusted_scope"


def against_trusted(ctx: AuditContext, opts: LabelNoiseOptions) -> TrustedResult | None:
    """Conformal p-values of every audited row's label (of the rows of
    ``ctx.cache[TRUSTED_SCOPE]`` when set) against ``ctx.trusted`` (None without a trusted
    sample)."""
    if ctx.trusted is None:
        return None
    t = ctx.trusted
    y_t = check_labels(t, ctx.contract).to_numpy().astype(int)
    scope = ctx.cache.get(TRUSTED_SCOPE)
    idx = np.arange(ctx.n_rows) if scope is None else np.flatnonzero(scope)
    # Rows of a reviewed slice passed again in the data are vetted: not scored (a model of
    # the trusted rows has seen them, and their labels were checked).
    in_trusted, matched_by = rows_in_trusted(ctx.data, t, ctx.contract)
    overlap = int(in_trusted[idx].sum())  # of the rows in scope, which the report names
    scoped = 0 if scope is None else len(idx)
    idx = idx[~in_trusted[idx]]
    y = ctx.y[idx].astype(int)
    X = ctx.encoded() if len(idx) == ctx.n_rows else ctx.encoded()[idx]
    cat = [ctx.transform.feature_names.index(f) for f in ctx.transform.categorical_features]
    with ctx.progress.stage("label noise: models of the trusted sample", total=1) as st:
        cal, scores = trusted_scores(
            ctx.transform.transform_frame(t),
            y_t,
            X,
            y,
            cat,
            folds=opts.trusted_folds,
            rounds=opts.trusted_rounds,
            repeats=opts.trusted_repeats,
            random_state=ctx.random_state,
            contrast=opts.trusted_contrast,
        )
        st.advance()
    p = conformal_pvalues(cal, y_t, scores, y)
    per_label_rows = [int((y == c).sum()) for c in (1, 0)]
    per_label_trusted = [int((y_t == c).sum()) for c in (1, 0)]

    entity = _entity_codes(ctx, idx)

    def excess(level: float) -> dict[str, float]:
        f = flag_improbable(p, level)
        k = [int((f & (y == c)).sum()) for c in (1, 0)]
        unit_var = None if entity is None else entity_flag_variance(f, y, entity)
        e, z = flag_excess(k, per_label_rows, per_label_trusted, level, unit_var=unit_var)
        sd = (sum(k) - e) / z if z else 0.0
        return {"level": level, "flagged": float(sum(k)), "expected": e, "z": z, "sd": sd}

    curve = [excess(a) for a in sorted({*CURVE_LEVELS, opts.trusted_level})]
    level = choose_level(
        curve,
        opts.trusted_level,
        max_level=opts.trusted_max_level,
        z_critical=opts.trusted_z,
        min_precision=opts.trusted_min_precision,
    )
    at = next(c for c in curve if c["level"] == level)
    flags = flag_improbable(p, level)
    flagged = np.flatnonzero(flags)
    flagged = flagged[np.argsort(p[flagged], kind="stable")]
    names = {1: ctx.contract.label.positive, 0: ctx.contract.label.negative}
    labels: list[dict[str, object]] = []
    for c, m, n_cal in zip((1, 0), per_label_rows, per_label_trusted, strict=True):
        labels.append(
            {
                "label": names[c] if names[c] is not None else f"not {names[1]!r}",
                "rows": m,
                "flagged": int((flags & (y == c)).sum()),
                "trusted": n_cal,
                "achievable": achievable_level(level, n_cal),
            }
        )
    shifts = label_rate_shifts(y, y_t, _segments(ctx, t, idx), opts.trusted_shift_alpha)
    return TrustedResult(
        p,
        idx[flagged],
        level,
        labels,
        at["expected"],
        at["z"],
        curve,
        len(t),
        nominal_level=opts.trusted_level,
        shifts=shifts,
        overlap=overlap,
        overlap_by=matched_by,
        overlap_scope=scoped,
        entity=None if entity is None else ctx.contract.entity,
    )


def rows_in_trusted(
    data: pd.DataFrame, trusted: pd.DataFrame, contract: Contract
) -> tuple[np.ndarray, str]:
    """Which rows of ``data`` are also in the trusted sample, and how they were matched.

    By the contract's ``id`` column when both frames have it (a reviewed slice keeps its ids),
    else by equal values of every model feature and the label (a row identical to a vetted one
    has a vetted label, whether or not it is the same record).

    Returns
    -------
    (mask, matched_by) : tuple of ndarray of bool and str
        ``matched_by`` is ``"id column 'ID'"`` or ``"identical features and label"``.
    """
    if contract.id and contract.id in data.columns and contract.id in trusted.columns:
        cols, how = [contract.id], f"id column {contract.id!r}"
    else:
        cols = [*contract.model_features(), contract.label.column]
        cols = [c for c in cols if c in data.columns and c in trusted.columns]
        how = "identical features and label"
    if not cols or trusted.empty:
        return np.zeros(len(data), dtype=bool), how

    def keys(df: pd.DataFrame) -> np.ndarray:
        # both frames hashed with the same column order; categories hash as their values
        out: np.ndarray = pd.util.hash_pandas_object(
            df[cols].astype(object), index=False
        ).to_numpy()
        return out

    return np.isin(keys(data), keys(trusted)), how


def choose_level(
    curve: Sequence[dict[str, float]],
    nominal: float,
    *,
    max_level: float,
    z_critical: float,
    min_precision: float,
) -> float:
    """The level rows are flagged at: ``nominal``, raised to the highest level of ``curve`` up
    to ``max_level`` where the flags show flipping (``z >= z_critical``) and at least
    ``min_precision`` of them are estimated to be flips: ``(flagged - expected - sd) /
    flagged``, the excess over what clean data gives, less one standard error (``sd``) of
    that expectation (picking the best of several levels favours levels where clean rows
    happened to be flagged less than expected; measured, the plain estimate overstated
    precision by about a tenth).

    On clean data no level shows an excess, so rows are flagged at the nominal level (its
    false-flag rate); under attack the level rises while the estimated precision holds.
    """
    chosen = nominal
    for c in curve:
        a, k = c["level"], c["flagged"]
        if not nominal < a <= max_level or k <= 0:
            continue
        excess = k - c["expected"] - c.get("sd", 0.0)
        if c["z"] >= z_critical and excess / k >= min_precision:
            chosen = max(chosen, a)
    return chosen


@dataclass
class LabelNoiseResult:
    """What the label-noise check found (data; :mod:`._label_noise_report` words it).

    Attributes
    ----------
    issues : ndarray
        cleanlab's label issues, most confident first.
    curve : list of dict
        :func:`excess_disagreement` at each threshold.
    n_rows : int
    trusted : TrustedResult, optional
        The test against the trusted sample, when one was given.
    """

    issues: np.ndarray
    curve: list[dict[str, float]]
    n_rows: int
    trusted: TrustedResult | None = None


def find_label_issues(ctx: AuditContext, opts: LabelNoiseOptions) -> LabelNoiseResult | None:
    """cleanlab's label issues on out-of-fold probabilities (computed as cleanlab does:
    :func:`~tabguard.data_audit._confident_learning.binary_label_issues`), and the diagnostic
    curve; None when the data has a single label."""
    y = ctx.y.astype(int)
    if y.min() == y.max():
        return None
    with ctx.progress.stage("label noise: out-of-fold model", total=1) as st:
        p = oof_probabilities(ctx)
        st.advance()
    # cleanlab's find_label_issues (prune by noise rate, ranked by self-confidence), the same
    # rows in the same order without its per-label Python validation (0.9 s at 1M rows)
    issues = binary_label_issues(y, np.column_stack([1.0 - p, p]))
    return LabelNoiseResult(
        issues,
        excess_disagreement(p, y, opts.thresholds),
        len(y),
        against_trusted(ctx, opts),
    )


@register_check
class LabelNoise:
    """Rows whose label disagrees with the rest of the data (cleanlab)."""

    name: ClassVar[str] = "label_noise"
    order: ClassVar[int] = 50
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    reads_matrix: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = LabelNoiseOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Find (:func:`find_label_issues`), then word (``_label_noise_report``)."""
        from tabguard.data_audit._label_noise_report import label_noise_report

        opts = ctx.opts(LabelNoiseOptions)
        result = find_label_issues(ctx, opts)
        if result is None:
            return CheckResult()
        ctx.cache["label_issues"] = result.issues
        return label_noise_report(result, opts)
