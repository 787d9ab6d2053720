"""The rule-based fallback policy (flag ``model = rules``): decisions without any ML model.

Seed 000 asks for a fallback plan that switches "from statistical to rule-based procedures";
seed 002 for a fallback that uses no gameable feature. :class:`RulePolicy` is built from the
contract alone, so it exists for every model directory:

1. **Declared cases.** Each ``unacceptable`` case of the contract with ``expect: deny``,
   ``not_approve`` or ``approve`` is a rule. A record matches when it is at least as extreme
   as the case on every listed feature, in the direction the contract's ``monotone`` key
   gives (``PAY_0 >= 8`` for an increasing feature when a positive label means deny), and
   equal on features without a direction. ``deny`` -> deny, ``not_approve`` -> review,
   ``approve`` -> approve. Gameable features are skipped: the fallback must not trust them.
2. **Monotone risk** (when a reference profile is available): the mean, over non-gameable
   monotone features, of the record's position in the reference distribution, oriented so
   that 1 is the risky end. At or above ``deny_above`` -> deny; below ``approve_below`` (off
   by default) -> approve. The value is logged as the score.
3. Everything else gets the ``default`` decision, ``review``: while the model is switched off,
   no application is approved automatically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tabguard.contract import Contract, contract_hash
from tabguard.contract._validate import _canon
from tabguard.serving._reference import ReferenceProfile

RuleDecision = Literal["approve", "deny", "review"]
_EXPECT: dict[str, RuleDecision] = {"deny": "deny", "not_approve": "review", "approve": "approve"}


@dataclass(frozen=True)
class RuleOutcome:
    """What the rule policy decided, and why.

    Attributes
    ----------
    decision : {'approve', 'deny', 'review'}
    rule : str
        ``case:<name>``, ``monotone_risk`` or ``default``.
    score : float or None
        The monotone risk in [0, 1] when computed.
    """

    decision: RuleDecision
    rule: str
    score: float | None = None


@dataclass(frozen=True)
class _Case:
    name: str
    decision: RuleDecision
    # (feature, value, direction): +1 "at least", -1 "at most", 0 "equal"
    checks: tuple[tuple[str, Any, int], ...]


class RulePolicy:
    """Decide from the contract's declared cases and monotone directions, without a model.

    Parameters
    ----------
    contract : Contract
    reference : ReferenceProfile, optional
        Enables the monotone risk rule.
    default : {'review', 'deny', 'approve'}, default 'review'
        The decision when no rule applies.
    deny_above : float, default 0.9
        Monotone risk from which the policy denies.
    approve_below : float, optional
        Monotone risk below which it approves (off by default).

    Examples
    --------
    >>> from tabguard.datasets import credit_default_contract
    >>> c = credit_default_contract()
    >>> policy = RulePolicy(c)
    >>> late = {**c.neutral_record(), **{f"PAY_{i}": 9 for i in (0, 2, 3, 4, 5, 6)}}
    >>> policy.decide(late)
    RuleOutcome(decision='review', rule='case:chronic_late_payer', score=None)
    >>> policy.decide(c.neutral_record()).decision
    'review'
    """

    def __init__(
        self,
        contract: Contract,
        reference: ReferenceProfile | None = None,
        *,
        default: RuleDecision = "review",
        deny_above: float = 0.9,
        approve_below: float | None = None,
    ) -> None:
        if default not in ("review", "deny", "approve"):
            raise ValueError(f"default must be review, deny or approve; got {default!r}")
        self.contract = contract
        self.default: RuleDecision = default
        self.deny_above = deny_above
        self.approve_below = approve_below
        self.version = f"rules/{contract_hash(contract)[:12]}"
        # +1: a larger value raises P(positive label) ... and so the risk of a denial.
        toward_deny = 1 if contract.decision.positive_means == "deny" else -1
        self._direction = {
            name: (1 if spec.monotone == "increasing" else -1) * toward_deny
            for name, spec in contract.items()
            if spec.monotone is not None and spec.is_numeric
        }
        self.cases = [c for c in (self._case(u) for u in contract.unacceptable) if c is not None]
        self.reference = (
            reference if reference is not None and reference.matches(contract) else None
        )
        self._risk_features: list[tuple[int, int]] = []
        if self.reference is not None:
            for j, name in enumerate(self.reference.features):
                spec = contract.features[name]
                if name in self._direction and not spec.gameable and self.reference.numeric[j]:
                    self._risk_features.append((j, self._direction[name]))

    def _case(self, case: Any) -> _Case | None:
        decision = _EXPECT.get(case.expect)
        if decision is None:
            return None  # "reject" cases never reach a policy: validation refuses them
        sign = 1 if decision != "approve" else -1  # an approve case matches the safe side
        checks = []
        for name, value in case.case.items():
            spec = self.contract.features[name]
            if spec.gameable or spec.protected:
                continue
            checks.append((name, value, self._direction.get(name, 0) * sign))
        if not checks:
            return None
        return _Case(case.name, decision, tuple(checks))

    @property
    def uses_risk(self) -> bool:
        """Whether the monotone risk rule is active (a matching reference profile)."""
        return bool(self._risk_features)

    def decide(self, record: Mapping[str, Any]) -> RuleOutcome:
        """Decide one validated record."""
        for case in self.cases:
            if all(_matches(record.get(n), v, d) for n, v, d in case.checks):
                return RuleOutcome(case.decision, f"case:{case.name}", self.risk(record))
        risk = self.risk(record)
        if risk is not None:
            if risk >= self.deny_above:
                return RuleOutcome("deny", "monotone_risk", risk)
            if self.approve_below is not None and risk < self.approve_below:
                return RuleOutcome("approve", "monotone_risk", risk)
        return RuleOutcome(self.default, "default", risk)

    def risk(self, record: Mapping[str, Any]) -> float | None:
        """Mean oriented reference position of the non-gameable monotone features."""
        if self.reference is None or not self._risk_features:
            return None
        total, n = 0.0, 0
        for j, direction in self._risk_features:
            value = record.get(self.reference.features[j])
            if value is None or isinstance(value, bool):
                continue
            u = self.reference.cdf(j, float(value))
            total += u if direction > 0 else 1.0 - u
            n += 1
        return total / n if n else None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for ``/health``."""
        return {
            "version": self.version,
            "cases": [c.name for c in self.cases],
            "monotone_risk": [self.reference.features[j] for j, _ in self._risk_features]
            if self.reference is not None
            else [],
            "default": self.default,
            "deny_above": self.deny_above,
            "approve_below": self.approve_below,
        }


def _matches(value: Any, case_value: Any, direction: int) -> bool:
    if value is None:
        return False
    if direction == 0 or isinstance(value, bool | str):
        return bool(_canon(value) == _canon(case_value))
    x, ref = float(value), float(case_value)
    if math.isnan(x):
        return False
    return x >= ref if direction > 0 else x <= ref
