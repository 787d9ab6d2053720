"""D3 RONI (reject on negative impact): confirm suspect groups by what they do to a model.

For each group of suspect rows (a trigger found by the trigger scan, and the label issues listed
by cleanlab), two models are fitted on the same training rows, one with the group and one
without, and compared on held-out rows drawn at random from all rows (so they keep the data's
natural noise):

* held-out log loss and AUC (the classic RONI question: does the group hurt accuracy?);
* for a trigger, the **trigger response**: the share of held-out rows (outside every suspect
  group) whose decision flips towards the trigger's label when the trigger value is written
  in. A backdoor barely moves accuracy (that is the point of it) but makes the model obey the
  trigger.

A group is confirmed when removing it lowers the trigger response by at least 5 points, or
improves held-out log loss by more than two standard errors (paired over held-out rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
from sklearn.metrics import roc_auc_score

from tabguard.checks import NON_NEGATIVE, PROBABILITY_OPEN, SHARE, CheckOptions, at_least, option
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._context_model import fit_context_model, instrument_rounds, predict
from tabguard.data_audit._matrix import build_matrix
from tabguard.data_audit._spare import NO_SPARE, Job, Spare
from tabguard.data_audit._triggers import condition


@dataclass(frozen=True)
class RoniOptions(CheckOptions):
    """Settings of RONI (``options={"roni": {...}}``); the decision rule is :func:`confirmed`."""

    check: ClassVar[str] = "roni"

    holdout: float = option(
        0.25, "share of all rows held out to compare the two models", PROBABILITY_OPEN
    )
    max_train_rows: int = option(60_000, "training rows of each fit (sampled)", at_least(100))
    max_holdout_rows: int = option(100_000, "held-out rows compared (sampled)", at_least(100))
    rounds: int = option(120, "boosting rounds of each fit (fewer on large data)", at_least(1))
    max_label_issues: int = option(
        5_000, "top-ranked cleanlab label issues removed as one group", at_least(1)
    )
    max_groups: int = option(
        8, "triggers confirmed, strongest first (each costs one model fit)", at_least(0)
    )
    decision_threshold: float = option(
        0.5, "score at which a held-out decision counts as the positive label", PROBABILITY_OPEN
    )
    min_response_drop: float = option(
        0.05,
        "drop of the trigger response (share of held-out decisions the trigger flips) that "
        "confirms a trigger group",
        SHARE,
    )
    logloss_se: float = option(
        2.0,
        "standard errors by which held-out log loss must improve without a group to confirm it",
        NON_NEGATIVE,
    )


def confirmed(
    response_with: float, response_without: float, gain: float, se: float, o: RoniOptions
) -> bool:
    """RONI's verdict on one group: removing it lowers the trigger response by at least
    ``min_response_drop`` (NaN responses: not a trigger group), or improves held-out log loss
    (``gain`` > 0: the group makes it worse) by more than ``logloss_se`` standard errors."""
    return (
        not math.isnan(response_with) and response_with - response_without >= o.min_response_drop
    ) or gain > o.logloss_se * se


def helps(gain: float, se: float, o: RoniOptions) -> bool:
    """Whether removing a group makes held-out log loss worse by more than ``logloss_se``
    standard errors: its rows carry signal the model needs (the mirror of :func:`confirmed`'s
    log-loss rule), which the report says rather than "no measurable impact"."""
    return -gain > o.logloss_se * se


def _logloss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _trigger_response(
    model: Any,
    X_trig: np.ndarray,
    p_before: np.ndarray,
    label: int,
    threshold: float,
    spare: Spare = NO_SPARE,
) -> float:
    """Share of rows not decided as ``label`` that the trigger turns to ``label``."""
    before = (p_before >= threshold).astype(int)
    after = (predict(model, X_trig, spare) >= threshold).astype(int)
    eligible = before != label
    return float((after[eligible] == label).mean()) if eligible.any() else 0.0


@dataclass
class RoniGroup:
    """One suspect group and what removing it does on held-out rows.

    Attributes
    ----------
    description : str
        ``trigger AGE=999`` or ``5000 top cleanlab label issues``.
    rows : ndarray
    features, values : list
        The trigger's cells (empty for label issues).
    gain : float
        Mean held-out log-loss increase caused by the group (> 0: it hurts).
    se : float
        Its standard error (paired over held-out rows).
    auc_with, auc_without : float
    response_with, response_without : float
        Share of held-out decisions the trigger flips towards its label (NaN: not a trigger).
    confirmed : bool
        :func:`confirmed`.
    """

    description: str
    rows: np.ndarray
    features: list[str]
    values: list[Any]
    gain: float
    se: float
    auc_with: float
    auc_without: float
    response_with: float
    response_without: float
    confirmed: bool
    is_trigger: bool


@dataclass
class RoniBase:
    """What RONI computes before the trigger scan has finished (:func:`roni_base`).

    Attributes
    ----------
    hold : ndarray of int
        Held-out rows (a random share of every row, sampled).
    train_all : ndarray of int
        Training rows of the model with every group (sampled from the others).
    model : lightgbm.Booster
        The model fitted on ``train_all``.
    p_with : ndarray
        Its predictions for ``hold``.
    issues : RoniGroup, optional
        cleanlab's label issues as a group, compared (None without label issues).
    """

    hold: np.ndarray
    train_all: np.ndarray
    model: Any
    p_with: np.ndarray
    issues: RoniGroup | None


def _fit(ctx: AuditContext, opts: RoniOptions, train: np.ndarray) -> Any:
    m = build_matrix(ctx)
    rounds, lr = instrument_rounds(ctx.n_rows, opts.rounds)
    return fit_context_model(
        m.raw,
        ctx.y.astype(float),
        [j for j in range(len(m.names)) if not m.ordinal[j]],
        rows=train,
        rounds=rounds,
        learning_rate=lr,
        random_state=ctx.random_state,
    )


def _compare(
    ctx: AuditContext,
    opts: RoniOptions,
    base: RoniBase,
    rows: np.ndarray,
) -> tuple[Any, np.ndarray, float, float]:
    """Fit without ``rows`` on the same training rows: the model, its held-out predictions,
    the mean held-out log-loss increase the rows cause and its standard error."""
    X, y, hold = build_matrix(ctx).raw, ctx.y.astype(float), base.hold
    member = np.zeros(ctx.n_rows, dtype=bool)
    member[rows] = True
    model = _fit(ctx, opts, base.train_all[~member[base.train_all]])
    p_without = predict(model, X[hold], ctx.spare)
    diff = _logloss_rows(y[hold], base.p_with) - _logloss_rows(y[hold], p_without)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    return model, p_without, float(diff.mean()), se  # mean > 0: the rows make it worse


def _label_issue_rows(ctx: AuditContext, opts: RoniOptions) -> np.ndarray | None:
    issues = ctx.cache.get("label_issues")
    if issues is None or not len(issues):
        return None
    return np.asarray(issues[: opts.max_label_issues])


def roni_base(ctx: AuditContext, opts: RoniOptions) -> RoniBase | None:
    """The held-out split, the model with every group and the label-issue group's
    comparison: everything that does not depend on the trigger scan (cached, so that the
    audit computes it beside the scan; None when the held-out rows carry one label).

    Reads cleanlab's label issues (``label_issues`` in the cache): call it after the
    label-noise check.
    """
    if "roni_base" in ctx.cache:
        cached: RoniBase | None = ctx.cache["roni_base"]
        return cached
    X, y = build_matrix(ctx).raw, ctx.y.astype(float)
    rng = np.random.default_rng(ctx.random_state)
    # One random split of every row: held-out rows keep the data's natural noise (removing
    # hard rows from the evaluation would make any noisy group look harmful).
    hold_mask = rng.random(ctx.n_rows) < opts.holdout
    hold, train_all = np.flatnonzero(hold_mask), np.flatnonzero(~hold_mask)
    if len(hold) > opts.max_holdout_rows:
        hold = np.sort(rng.choice(hold, opts.max_holdout_rows, replace=False))
    base: RoniBase | None = None
    if len(np.unique(y[hold])) == 2:
        cap = opts.max_train_rows
        if len(train_all) > cap:
            train_all = np.sort(rng.choice(train_all, cap, replace=False))
        model = _fit(ctx, opts, train_all)
        base = RoniBase(hold, train_all, model, predict(model, X[hold]), None)
        rows = _label_issue_rows(ctx, opts)
        if rows is not None:
            _, p_without, gain, se = _compare(ctx, opts, base, rows)
            base.issues = RoniGroup(
                f"{len(rows)} top cleanlab label issues",
                rows,
                [],
                [],
                gain,
                se,
                float(roc_auc_score(y[hold], base.p_with)),
                float(roc_auc_score(y[hold], p_without)),
                math.nan,
                math.nan,
                confirmed(math.nan, math.nan, gain, se, opts),
                False,
            )
    ctx.cache["roni_base"] = base
    return base


def confirm_groups(ctx: AuditContext, opts: RoniOptions) -> list[RoniGroup] | None:
    """Fit with and without each suspect group (the trigger scan's triggers, cleanlab's label
    issues) and compare on held-out rows; None when there is nothing to compare."""
    m = build_matrix(ctx)
    patterns = sorted(ctx.cache.get("trigger_patterns", []), key=lambda p: p.p)
    triggers = [(p, p.rows[ctx.y[p.rows] == p.label]) for p in patterns[: opts.max_groups]]
    issue_rows = _label_issue_rows(ctx, opts)
    if not triggers and issue_rows is None:
        return None
    base = roni_base(ctx, opts)
    if base is None:
        return None
    X, y, hold = m.raw, ctx.y.astype(float), base.hold
    in_any = np.zeros(ctx.n_rows, dtype=bool)
    for _, rows in triggers:
        in_any[rows] = True
    if issue_rows is not None:
        in_any[issue_rows] = True
    # trigger responses are measured on held-out rows that are in no suspect group
    on_probe = ~in_any[hold]
    probe = hold[on_probe]
    out: list[RoniGroup] = []
    with ctx.progress.stage("RONI", total=len(triggers) + (issue_rows is not None)) as st:
        for pattern, rows in triggers:
            thr = opts.decision_threshold
            with_group: Job[float] | None = None
            if len(probe):
                Xt = X[probe]
                for j in pattern.cols:
                    Xt[:, j] = m.raw[pattern.rows[0], j]
                # the probe rows are held-out rows: their predictions are already made; the
                # response with every group reads the prepared model, lent to an idle lane
                # while the model without the group is fitted
                with_group = ctx.spare.submit(
                    partial(
                        _trigger_response, base.model, Xt, base.p_with[on_probe], pattern.label, thr
                    )
                )
            base_model, p_without, gain, se = _compare(ctx, opts, base, rows)
            resp_w = resp_wo = math.nan
            if with_group is not None:
                resp_w = with_group.result()
                resp_wo = _trigger_response(
                    base_model, Xt, p_without[on_probe], pattern.label, thr, ctx.spare
                )
            out.append(
                RoniGroup(
                    f"trigger {condition(m, pattern)}",
                    rows,
                    [m.names[j] for j in pattern.cols],
                    [m.value(j, v) for j, v in zip(pattern.cols, pattern.codes, strict=True)],
                    gain,
                    se,
                    float(roc_auc_score(y[hold], base.p_with)),
                    float(roc_auc_score(y[hold], p_without)),
                    resp_w,
                    resp_wo,
                    confirmed(resp_w, resp_wo, gain, se, opts),
                    True,
                )
            )
            st.advance()
        if base.issues is not None:
            out.append(base.issues)
            st.advance()
    return out


@register_check
class Roni:
    """Reject-on-negative-impact confirmation of suspect groups."""

    name: ClassVar[str] = "roni"
    order: ClassVar[int] = 60
    after: ClassVar[tuple[str, ...]] = ("trigger_scan", "label_noise")
    #: :meth:`prepare` reads cleanlab's label issues, not the triggers
    prepare_after: ClassVar[tuple[str, ...]] = ("label_noise",)
    concurrent: ClassVar[bool] = False
    reads_matrix: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = RoniOptions

    def prepare(self, ctx: AuditContext) -> None:
        """The work that does not wait for the trigger scan (:func:`roni_base`): on large
        data the audit runs it in the second lane, beside the scan."""
        roni_base(ctx, ctx.opts(RoniOptions))

    def run(self, ctx: AuditContext) -> CheckResult:
        """Compare (:func:`confirm_groups`), then word (``_roni_report``)."""
        from tabguard.data_audit._roni_report import roni_report

        opts = ctx.opts(RoniOptions)
        groups = confirm_groups(ctx, opts)
        return CheckResult() if groups is None else roni_report(groups, opts)
