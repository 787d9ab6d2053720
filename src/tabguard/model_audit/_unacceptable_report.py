"""Wording of the unacceptable cases (M2): a critical finding per broken case, the cases' table.

The computation (:func:`~tabguard.model_audit._unacceptable.run_case`) returns a
:class:`~tabguard.model_audit._unacceptable.CaseOutcome` per case; this module words them.
"""

from __future__ import annotations

from tabguard.model_audit._base import ModelCheckResult
from tabguard.model_audit._unacceptable import CaseOutcome
from tabguard.reports import Finding, Section, Table


def unacceptable_report(outcomes: list[CaseOutcome], rows: int, declared: int) -> ModelCheckResult:
    """Findings for the cases that do not hold and one table of every case.

    Parameters
    ----------
    outcomes : list of CaseOutcome
        Declared cases first, then the automatic ones.
    rows : int
        Reference rows every case was applied to.
    declared : int
        How many of the cases the contract declares.
    """
    findings = [case_finding(oc) for oc in outcomes if not oc.ok]
    table_rows = [
        [
            oc.case.name,
            ", ".join(f"{k}={v!r}" for k, v in oc.case.case.items()),
            oc.case.expect,
            f"{oc.rejected}/{oc.n}",
            oc.approved,
            oc.denied,
            oc.review,
            oc.would_change,
            oc.score_error or "",
            "ok" if oc.ok else f"FAILED ({len(oc.violations)} rows)",
        ]
        for oc in outcomes
    ]
    section = Section(
        title="Unacceptable cases (M2)",
        text=[
            f"Each case overrides features on {rows} clean reference rows. 'reject' cases must "
            "be refused by the contract's record validation; the 'would change' column shows "
            "the share of decisions the model would change if such a record reached it anyway. "
            "Automatic cases (auto:...) test every range bound and an unknown category."
        ],
        tables=[
            Table(
                columns=[
                    "case",
                    "override",
                    "expect",
                    "rejected",
                    "approved",
                    "denied",
                    "review",
                    "would change",
                    "scoring error",
                    "result",
                ],
                rows=table_rows,
            )
        ],
    )
    return ModelCheckResult(
        findings=findings,
        sections=[section],
        summary={
            "cases": len(outcomes),
            "declared": declared,
            "failed": [oc.case.name for oc in outcomes if not oc.ok],
        },
    )


def case_finding(oc: CaseOutcome) -> Finding:
    """A critical finding for a case whose expectation does not hold."""
    c = oc.case
    override = ", ".join(f"{k}={v!r}" for k, v in c.case.items())
    if c.expect == "reject":
        msg = (
            f"unacceptable case '{c.name}' ({override}) must be rejected by contract "
            f"validation, but {len(oc.violations)} of {oc.n} records pass; if they reach "
            f"the model, {oc.would_change:.0%} of decisions change."
        )
        rec = "tighten the contract (min/max/categories) so the API rejects these values"
    else:
        msg = (
            f"unacceptable case '{c.name}' ({override}) expects '{c.expect}', but "
            f"{len(oc.violations)} of {oc.n} reference rows break it "
            f"(approved {oc.approved}, denied {oc.denied}, review {oc.review}, "
            f"rejected {oc.rejected})."
        )
        rec = "retrain with the case in mind, or add a rule/flag in the decision layer"
    return Finding(
        check="unacceptable_case",
        severity="critical",
        message=msg,
        features=list(c.case),
        values=list(c.case.values()),
        rows=[int(r) for r in oc.violations[:200]],
        evidence={
            "case": c.name,
            "expect": c.expect,
            "records": oc.n,
            "rejected": oc.rejected,
            "approved": oc.approved,
            "denied": oc.denied,
            "review": oc.review,
            "would_change": oc.would_change,
            "validation_rules": oc.reasons,
        },
        recommendation=rec,
    )
