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
from typing import Any, ClassVar

import numpy as np
from sklearn.metrics import roc_auc_score

from tabguard.checks import NON_NEGATIVE, PROBABILITY_OPEN, SHARE, CheckOptions, at_least, option
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._context_model import fit_context_model, instrument_rounds, predict
from tabguard.data_audit._matrix import build_matrix
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


def _logloss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _trigger_response(
    model: Any, X_trig: np.ndarray, p_before: np.ndarray, label: int, threshold: float
) -> float:
    """Share of rows not decided as ``label`` that the trigger turns to ``label``."""
    before = (p_before >= threshold).astype(int)
    after = (predict(model, X_trig) >= threshold).astype(int)
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


def confirm_groups(ctx: AuditContext, opts: RoniOptions) -> list[RoniGroup] | None:
    """Fit with and without each suspect group (the trigger scan's triggers, cleanlab's label
    issues) and compare on held-out rows; None when there is nothing to compare."""
    m = build_matrix(ctx)
    groups: list[tuple[str, np.ndarray, Any]] = []
    patterns = sorted(ctx.cache.get("trigger_patterns", []), key=lambda p: p.p)
    for p in patterns[: opts.max_groups]:
        rows = p.rows[ctx.y[p.rows] == p.label]
        groups.append((f"trigger {condition(m, p)}", rows, p))
    issues = ctx.cache.get("label_issues")
    if issues is not None and len(issues):
        groups.append(
            (
                f"{min(len(issues), opts.max_label_issues)} top cleanlab label issues",
                np.asarray(issues[: opts.max_label_issues]),
                None,
            )
        )
    if not groups:
        return None
    X, y = m.raw, ctx.y.astype(float)
    cat = [j for j in range(len(m.names)) if not m.ordinal[j]]
    rng = np.random.default_rng(ctx.random_state)
    # One random split of every row: held-out rows keep the data's natural noise (removing
    # hard rows from the evaluation would make any noisy group look harmful).
    hold_mask = rng.random(ctx.n_rows) < opts.holdout
    hold, train_all = np.flatnonzero(hold_mask), np.flatnonzero(~hold_mask)
    if len(hold) > opts.max_holdout_rows:
        hold = np.sort(rng.choice(hold, opts.max_holdout_rows, replace=False))
    if len(np.unique(y[hold])) < 2:
        return None
    cap = opts.max_train_rows
    if len(train_all) > cap:
        train_all = np.sort(rng.choice(train_all, cap, replace=False))
    in_any = np.zeros(ctx.n_rows, dtype=bool)
    for _, rows, _ in groups:
        in_any[rows] = True
    # trigger responses are measured on held-out rows that are in no suspect group
    on_probe = ~in_any[hold]
    probe = hold[on_probe]
    rounds, lr = instrument_rounds(ctx.n_rows, opts.rounds)

    def fit(train: np.ndarray) -> Any:
        return fit_context_model(
            X,
            y,
            cat,
            rows=train,
            rounds=rounds,
            learning_rate=lr,
            random_state=ctx.random_state,
        )

    out: list[RoniGroup] = []
    with ctx.progress.stage("RONI", total=len(groups)) as st:
        model = fit(train_all)
        p_with = predict(model, X[hold])
        for desc, rows, pattern in groups:
            member = np.zeros(ctx.n_rows, dtype=bool)
            member[rows] = True
            without = train_all[~member[train_all]]
            base_model = fit(without)
            p_without = predict(base_model, X[hold])
            diff = _logloss_rows(y[hold], p_with) - _logloss_rows(y[hold], p_without)
            se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
            gain = float(diff.mean())  # > 0: the group makes held-out predictions worse
            resp_w = resp_wo = math.nan
            if pattern is not None and len(probe):
                Xp = X[probe]
                Xt = Xp.copy()
                for j in pattern.cols:
                    Xt[:, j] = m.raw[pattern.rows[0], j]
                thr = opts.decision_threshold
                # the probe rows are held-out rows: their predictions are already made
                resp_w = _trigger_response(model, Xt, p_with[on_probe], pattern.label, thr)
                resp_wo = _trigger_response(base_model, Xt, p_without[on_probe], pattern.label, thr)
            out.append(
                RoniGroup(
                    desc,
                    rows,
                    [] if pattern is None else [m.names[j] for j in pattern.cols],
                    []
                    if pattern is None
                    else [m.value(j, v) for j, v in zip(pattern.cols, pattern.codes, strict=True)],
                    gain,
                    se,
                    float(roc_auc_score(y[hold], p_with)),
                    float(roc_auc_score(y[hold], p_without)),
                    resp_w,
                    resp_wo,
                    confirmed(resp_w, resp_wo, gain, se, opts),
                    pattern is not None,
                )
            )
            st.advance()
    return out


@register_check
class Roni:
    """Reject-on-negative-impact confirmation of suspect groups."""

    name: ClassVar[str] = "roni"
    order: ClassVar[int] = 60
    after: ClassVar[tuple[str, ...]] = ("trigger_scan", "label_noise")
    concurrent: ClassVar[bool] = False
    reads_matrix: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = RoniOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Compare (:func:`confirm_groups`), then word (``_roni_report``)."""
        from tabguard.data_audit._roni_report import roni_report

        groups = confirm_groups(ctx, ctx.opts(RoniOptions))
        return CheckResult() if groups is None else roni_report(groups)
