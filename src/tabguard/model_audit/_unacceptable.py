"""Unacceptable-case tests (requirement M2, seed 001's "unacceptable cases").

Each case overrides some features on top of clean reference rows:

* ``expect: reject`` - every such record must be refused by contract validation (the strict
  :class:`~tabguard.contract.RecordValidator` of the scoring API) and so never reach the model.
  The audit also scores the records anyway and reports what the model *would* decide, so a
  reviewer sees what the validation is protecting against.
* ``expect: deny | approve | not_approve`` - the records must pass validation and the model's
  decisions must match (``not_approve`` also accepts the review band).

Beside the contract's declared cases the audit derives automatic ones from the ranges: for
every feature ``min - 1``, ``max + 1`` and an unknown category must be rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tabguard._plain import plain
from tabguard.checks import CheckOptions, at_least, option
from tabguard.contract import Contract, RecordValidator, UnacceptableCase
from tabguard.model_audit._base import ModelAuditContext, ModelCheckResult, register_check
from tabguard.model_audit._model import AuditedModel


def automatic_cases(contract: Contract) -> list[UnacceptableCase]:
    """Cases every contract implies: below ``min``, above ``max``, an unknown category."""
    out: list[UnacceptableCase] = []
    for name, spec in contract.items():
        if spec.is_numeric:
            step = 1 if spec.type == "integer" or spec.precision == 0 else 1.0
            if spec.min is not None:
                v = spec.min - step
                out.append(
                    UnacceptableCase(
                        name=f"auto:{name}:below_min",
                        case={name: int(v) if spec.type == "integer" else float(v)},
                        expect="reject",
                        description=f"{name} below its minimum {spec.min:g}",
                    )
                )
            if spec.max is not None:
                v = spec.max + step
                out.append(
                    UnacceptableCase(
                        name=f"auto:{name}:above_max",
                        case={name: int(v) if spec.type == "integer" else float(v)},
                        expect="reject",
                        description=f"{name} above its maximum {spec.max:g}",
                    )
                )
        elif spec.type == "category":
            cats = spec.categories or []
            if all(isinstance(c, int) and not isinstance(c, bool) for c in cats):
                unknown: Any = max(int(c) for c in cats) + 1
            else:
                unknown = "__unknown__"
                while unknown in cats:
                    unknown += "_"
            out.append(
                UnacceptableCase(
                    name=f"auto:{name}:unknown_category",
                    case={name: unknown},
                    expect="reject",
                    description=f"{name} outside its categories",
                )
            )
    return out


def _plain(v: Any) -> Any:
    v = plain(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def records(df: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    """Rows as JSON-like records of the contract's features (Python types)."""
    cols = [c for c in contract.features if c in df.columns]
    out = []
    for row in df[cols].itertuples(index=False, name=None):
        rec = {}
        for c, v in zip(cols, row, strict=True):
            v = _plain(v)
            spec = contract.features[c]
            if spec.type == "integer" and isinstance(v, float) and v.is_integer():
                v = int(v)
            rec[c] = v
        out.append(rec)
    return out


@dataclass
class CaseOutcome:
    """What happened to one case on the reference rows."""

    case: UnacceptableCase
    n: int
    rejected: int
    approved: int
    denied: int
    review: int
    would_approve: float  # share approved if the records reached the model anyway
    would_change: float  # share of decisions that change vs the clean rows
    score_error: str | None
    violations: np.ndarray  # reference row positions breaking the expectation
    reasons: list[str]

    @property
    def ok(self) -> bool:
        """Whether the expectation holds on every record."""
        return self.violations.size == 0


def run_case(
    model: AuditedModel,
    validator: RecordValidator,
    base: pd.DataFrame,
    base_rows: np.ndarray,
    base_approve: np.ndarray,
    case: UnacceptableCase,
) -> CaseOutcome:
    """Apply one case to the base rows, validate, score and compare with the expectation."""
    frame = base.copy()
    for f, v in case.case.items():
        if f in frame.columns and not _fits_dtype(frame[f], v):
            frame[f] = frame[f].astype(object)
        frame[f] = [v] * len(frame)
    recs = records(frame, model.contract)
    errors = [validator.errors(r) for r in recs]
    rejected = np.array([bool(e) for e in errors])
    reasons = sorted({f"{e.field}:{e.rule}" for errs in errors for e in errs})
    score_error = None
    try:
        scores = model.positive_proba(frame)
        approve = model.approve(scores)
        review = _in_review(model, scores)
    except Exception as exc:  # the model may not be able to encode an impossible value at all
        score_error = f"{type(exc).__name__}: {exc}"[:200]
        approve = np.zeros(len(frame), dtype=bool)
        review = np.zeros(len(frame), dtype=bool)
    passed = ~rejected
    if case.expect == "reject":
        bad = passed
    elif case.expect == "deny":
        bad = passed & (approve | review)
    elif case.expect == "approve":
        bad = rejected | ~approve | review
    else:  # not_approve: denial or review, never an automatic approval
        bad = passed & approve & ~review
    return CaseOutcome(
        case=case,
        n=len(frame),
        rejected=int(rejected.sum()),
        approved=int((passed & approve & ~review).sum()),
        denied=int((passed & ~approve).sum()),
        review=int((passed & review).sum()),
        would_approve=float(approve.mean()) if score_error is None else math.nan,
        would_change=float(np.mean(approve != base_approve)) if score_error is None else math.nan,
        score_error=score_error,
        violations=base_rows[bad],
        reasons=reasons,
    )


def _fits_dtype(col: pd.Series, v: Any) -> bool:
    if isinstance(v, str):
        return col.dtype == object or pd.api.types.is_string_dtype(col)
    if isinstance(v, bool):
        return pd.api.types.is_bool_dtype(col) or col.dtype == object
    if isinstance(v, int):
        return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if isinstance(v, float):
        return pd.api.types.is_float_dtype(col) or (
            pd.api.types.is_numeric_dtype(col) and float(v).is_integer()
        )
    return col.dtype == object


def _in_review(model: AuditedModel, scores: np.ndarray) -> np.ndarray:
    band = model.contract.decision.review_band
    if band is None:
        return np.zeros(len(scores), dtype=bool)
    lo, hi = band
    return (scores >= lo) & (scores < hi)


@dataclass(frozen=True)
class UnacceptableOptions(CheckOptions):
    """Settings of the unacceptable-cases check (``options={"unacceptable": {...}}``)."""

    check: ClassVar[str] = "unacceptable"

    rows: int = option(200, "reference rows every case is applied to", at_least(1))
    automatic: bool = option(
        True,
        "also run the automatic cases derived from the contract's ranges and categories",
    )


@register_check
class UnacceptableCheck:
    """M2: the contract's unacceptable cases and the automatic range cases."""

    name: ClassVar[str] = "unacceptable"
    order: ClassVar[int] = 30
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = UnacceptableOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Run every case on a sample of reference rows; ``_unacceptable_report`` words them."""
        from tabguard.model_audit._unacceptable_report import unacceptable_report

        o = ctx.opts(UnacceptableOptions)
        model = ctx.model
        rows = ctx.sample(o.rows, key="cases")
        base = ctx.data.iloc[rows].reset_index(drop=True)
        base_approve = ctx.approve[rows]
        validator = RecordValidator(model.contract, allow_unknown=True)
        declared = list(model.contract.unacceptable)
        auto = automatic_cases(model.contract) if o.automatic else []
        outcomes: list[CaseOutcome] = []
        with ctx.progress.stage("unacceptable cases", total=len(declared) + len(auto)) as st:
            for case in [*declared, *auto]:
                st.advance()
                outcomes.append(run_case(model, validator, base, rows, base_approve, case))
        return unacceptable_report(outcomes, len(rows), len(declared))
