"""D1 integrity: contract violations (type, range, category, precision, impossible combinations).

A violation is a finding of its own, never by itself a poisoning suspicion: rows breaking the
contract are quarantined (they cannot be trained on) with the rule they break as the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tabguard.checks import SHARE, CheckOptions, option
from tabguard.data_audit._base import AuditContext, CheckResult, Treatment, register_check
from tabguard.data_audit._entity import audit_undeclared_ids, entity_hints
from tabguard.reports import Finding, Section, Table


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


@dataclass(frozen=True)
class IntegrityOptions(CheckOptions):
    """Settings of the integrity check (``options={"integrity": {...}}``)."""

    check: ClassVar[str] = "integrity"

    systematic_share: float = option(
        0.01,
        "share of rows breaking one rule (other than missing or precision) from which the "
        "finding is critical: the source or the contract is wrong, not a few bad rows",
        SHARE,
    )


@register_check
class IntegrityCheck:
    """Rows that break the feature contract."""

    name: ClassVar[str] = "integrity"
    order: ClassVar[int] = 10
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    reads_matrix: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = IntegrityOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Turn the contract validation into findings, quarantine and treatments."""
        opts = ctx.opts(IntegrityOptions)
        res = CheckResult()
        val = ctx.validation
        n = ctx.n_rows
        for g in val.groups:
            share = g.count / max(n, 1)
            # A few impossible values are a data-quality problem (quarantined, training can
            # go on); a systematic share (>= 1 %) means the source or the contract is wrong.
            systematic = share >= opts.systematic_share and g.rule not in ("missing", "precision")
            severity = "critical" if systematic else "warning"
            res.findings.append(
                Finding(
                    check="integrity",
                    severity=severity,
                    message=f"{g.count} row(s) ({share:.2%}) break the contract: {g.message} "
                    f"(rule '{g.rule}'); examples {g.examples[:3]}.",
                    features=g.field.split(","),
                    values=list(g.examples[:5]),
                    rows=[int(r) for r in g.rows],
                    evidence={"rule": g.rule, "count": g.count, "share": share},
                    recommendation="Fix the source or the contract; these rows are quarantined "
                    "and never reach training.",
                )
            )
            for r in g.rows.tolist():
                res.quarantine.setdefault(int(r), f"contract:{g.field}:{g.rule}")
            res.treatments.append(
                Treatment("quarantined", g.rows, g.message, self.name, g.field.split(","))
            )
        if val.unknown_columns:
            res.findings.append(
                Finding(
                    check="integrity",
                    severity="info",
                    message=f"{len(val.unknown_columns)} column(s) are not in the contract and are "
                    f"ignored: {val.unknown_columns[:10]}.",
                    features=val.unknown_columns[:50],
                )
            )
            # an ignored column that repeats like an account id: panel data whose rows the
            # trigger scan would count one by one (see _entity)
            hints = entity_hints(
                ctx.data, ctx.contract, seed=ctx.random_state, found=audit_undeclared_ids(ctx)
            )
            for hint in hints:
                res.findings.append(
                    Finding(
                        check="integrity",
                        severity="warning",
                        message=hint.message(),
                        features=[hint.column],
                        evidence={
                            "rule": "entity_hint",
                            "column": hint.column,
                            "rows": hint.rows,
                            "entities": hint.entities,
                            "constant": list(hint.constant),
                        },
                        recommendation=f"Add `entity: {hint.column}` to the contract (beside "
                        "`id`) if each of its values is one account, customer or subject.",
                    )
                )
        # Values inside the valid range but outside the soft clip range: clipped by the
        # contract transform in training and serving alike (documented, not quarantined).
        X = val.numeric
        for name, spec in ctx.contract.items():
            if spec.clip is None or name not in X:
                continue
            x = X[name].to_numpy()
            with np.errstate(invalid="ignore"):
                rows = np.flatnonzero((x < spec.clip[0]) | (x > spec.clip[1]))
            rows = rows[ctx.valid[rows]]
            if rows.size:
                res.treatments.append(
                    Treatment(
                        "clipped",
                        rows,
                        f"{name} outside clip range [{_num(spec.clip[0])}, {_num(spec.clip[1])}]",
                        self.name,
                        [name],
                    )
                )
            spec_nullable = spec.nullable and spec.neutral is not None
            if spec_nullable:
                miss = np.flatnonzero(np.isnan(x))
                if miss.size:
                    res.treatments.append(
                        Treatment(
                            "imputed",
                            miss,
                            f"{name} missing, neutral value {spec.neutral!r} used",
                            self.name,
                            [name],
                        )
                    )
        table = [
            [g.field, g.rule, g.count, f"{g.count / max(n, 1):.2%}", str(g.examples[:3])]
            for g in val.groups
        ]
        res.sections.append(
            Section(
                title="Contract integrity (D1)",
                text=[
                    f"{int(val.invalid_mask().sum())} of {n} rows break the contract "
                    f"'{ctx.contract.name}'."
                    if val.groups
                    else f"All {n} rows satisfy the contract '{ctx.contract.name}'."
                ],
                tables=[Table(columns=["field", "rule", "rows", "share", "examples"], rows=table)]
                if table
                else [],
            )
        )
        res.summary = {"invalid_rows": int(val.invalid_mask().sum())}
        return res
