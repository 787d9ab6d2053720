"""Wording of membership inference (M3): the attack AUC finding and the attacks' table.

The computation (:func:`~tabguard.model_audit._membership.membership_attack`) returns a
:class:`~tabguard.model_audit._membership.MembershipResult`; this module words it.
"""

from __future__ import annotations

from tabguard.model_audit._base import ModelCheckResult
from tabguard.model_audit._membership import MembershipResult
from tabguard.reports import Finding, Section, Table

CHECK = "membership_inference"


def not_run_report() -> ModelCheckResult:
    """An info saying the check needs the training rows."""
    return ModelCheckResult(
        findings=[
            Finding(
                check=CHECK,
                severity="info",
                message=(
                    "membership inference not run: it needs the model's training rows "
                    "(pass them with --members) to attack against the reference rows."
                ),
            )
        ],
        summary={"skipped": "no training rows"},
    )


def membership_report(res: MembershipResult, warning_auc: float) -> ModelCheckResult:
    """The attack AUC (a warning from ``warning_auc``) and the table of both attacks."""
    sev = "warning" if res.auc >= warning_auc else "info"
    finding = Finding(
        check=CHECK,
        severity=sev,
        message=(
            f"membership inference attack AUC {res.auc:.3f} (loss threshold "
            f"{res.loss_auc:.3f}, learned attack {res.learned_auc:.3f}; 0.5 = no leakage) "
            f"on {res.members} training rows against {res.non_members} reference rows."
        ),
        evidence=res.__dict__,
        recommendation="regularise (robust preset), answer with decisions only"
        if sev == "warning"
        else None,
    )
    return ModelCheckResult(
        findings=[finding],
        sections=[
            Section(
                title="White-hat attack: membership inference (M3)",
                text=[
                    "Training rows (members) against reference rows (non-members), balanced. "
                    "The loss-threshold attack needs no model; the learned attack is a "
                    "cross-validated classifier on the score, the probability of the true "
                    "label, the loss and the label."
                ],
                tables=[
                    Table(
                        columns=["attack", "AUC"],
                        rows=[
                            ["loss threshold", res.loss_auc],
                            ["learned (cross-validated)", res.learned_auc],
                        ],
                    )
                ],
            )
        ],
        summary=res.__dict__,
    )
