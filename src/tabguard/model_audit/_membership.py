"""Membership inference (M3): can an attacker tell training rows from other rows?

Two black-box attacks use only what the scoring API returns (the score) and the subject's
true outcome, which an attacker targeting a known person may know:

* the **loss-threshold attack** (Yeom et al. 2018): training rows have a lower loss; its AUC
  is the AUC of ``-loss`` for members against non-members (no attack model needed);
* a **learned attack**: a classifier on (score, probability of the true label, loss, label),
  cross-validated on balanced members and non-members - the shadow-model attack of Shokri et
  al. with the target's own answers as training signal (an upper bound on what shadow models
  learn).

The membership AUC is the larger of the two; 0.5 means no leakage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tabguard.checks import CheckOptions, at_least, interval, option
from tabguard.model_audit._base import ModelAuditContext, ModelCheckResult, register_check
from tabguard.model_audit._model import AuditedModel


@dataclass
class MembershipResult:
    """Attack AUCs (0.5 = no leakage).

    Attributes
    ----------
    auc : float
        The strongest attack's AUC.
    loss_auc : float
        Loss-threshold attack.
    learned_auc : float
        Cross-validated learned attack.
    members, non_members : int
        Rows attacked of each kind.
    """

    auc: float
    loss_auc: float
    learned_auc: float
    members: int
    non_members: int


def attack_features(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row attack features: score, P(true label), loss, label."""
    p = np.clip(scores, 1e-7, 1 - 1e-7)
    p_true = np.where(y == 1, p, 1 - p)
    loss = -np.log(p_true)
    return np.column_stack([p, p_true, loss, y.astype(float)])


def membership_attack(
    model: AuditedModel,
    X_members: np.ndarray,
    y_members: np.ndarray,
    X_non: np.ndarray,
    y_non: np.ndarray,
    *,
    max_rows: int = 5000,
    random_state: int = 0,
) -> MembershipResult:
    """Attack AUCs for known members (training rows) and non-members (held-out rows).

    Parameters
    ----------
    model : AuditedModel
    X_members, y_members : ndarray
        Training rows (model matrix) and their 0/1 labels.
    X_non, y_non : ndarray
        Rows the model never saw.
    max_rows : int
        Rows used of each kind (balanced).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(random_state)
    n = min(len(X_members), len(X_non), max_rows)
    im = rng.choice(len(X_members), size=n, replace=False)
    inn = rng.choice(len(X_non), size=n, replace=False)
    fm = attack_features(model.predict_matrix(X_members[im]), y_members[im])
    fn = attack_features(model.predict_matrix(X_non[inn]), y_non[inn])
    F = np.vstack([fm, fn])
    is_member = np.r_[np.ones(n), np.zeros(n)]
    loss_auc = float(roc_auc_score(is_member, -F[:, 2]))
    clf = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=15, learning_rate=0.05, random_state=random_state
    )
    oof = cross_val_predict(clf, F, is_member, cv=5, method="predict_proba")[:, 1]
    learned_auc = float(roc_auc_score(is_member, oof))
    return MembershipResult(max(loss_auc, learned_auc), loss_auc, learned_auc, n, n)


@dataclass(frozen=True)
class MembershipOptions(CheckOptions):
    """Settings of the membership-inference check (``options={"membership": {...}}``)."""

    check: ClassVar[str] = "membership"

    warning_auc: float = option(
        0.6,
        "attack AUC from which the finding is a warning (0.5: members cannot be told apart)",
        interval(0.5, 1.0),
    )
    rows: int = option(5000, "members and non-members each given to the attack", at_least(10))


@register_check
class MembershipCheck:
    """M3: membership inference attack AUC (needs the training rows)."""

    name: ClassVar[str] = "membership"
    order: ClassVar[int] = 70
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = MembershipOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Attack the model with its training rows against the reference rows.

        ``_membership_report`` words the outcome.
        """
        from tabguard.model_audit._membership_report import membership_report, not_run_report

        o = ctx.opts(MembershipOptions)
        if ctx.members is None or len(ctx.members) == 0:
            return not_run_report()
        from tabguard.io import check_labels

        Xm = ctx.model.encode(ctx.members)
        ym = check_labels(ctx.members, ctx.model.contract).to_numpy()
        with ctx.progress.stage("membership inference", total=None):
            res = membership_attack(
                ctx.model,
                Xm,
                ym,
                ctx.X,
                ctx.y,
                max_rows=o.rows,
                random_state=ctx.random_state,
            )
        return membership_report(res, o.warning_auc)
