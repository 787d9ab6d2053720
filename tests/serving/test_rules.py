"""The rule-based fallback policy, built from the contract alone."""

from __future__ import annotations

import pytest

from tabguard.contract import contract_from_dict
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.serving import ReferenceProfile, RulePolicy

CREDIT = credit_default_contract()
LATE = {f"PAY_{i}": 8 for i in (0, 2, 3, 4, 5, 6)}


def test_declared_cases_match_at_least_as_extreme_records() -> None:
    policy = RulePolicy(CREDIT)
    assert [c.name for c in policy.cases] == ["chronic_late_payer"]  # reject cases are skipped
    neutral = CREDIT.neutral_record()
    assert policy.decide({**neutral, **LATE}).rule == "case:chronic_late_payer"
    later = {**neutral, **dict.fromkeys(LATE, 9)}  # monotone increasing: 9 is worse than 8
    assert policy.decide(later).decision == "review"
    almost = {**neutral, **LATE, "PAY_6": 7}
    assert policy.decide(almost).rule == "default"


def test_gameable_features_and_equality_cases() -> None:
    contract = contract_from_dict(
        {
            "name": "toy",
            "label": {"column": "y"},
            "decision": {"positive_means": "deny"},
            "features": {
                "risk": {"type": "integer", "min": 0, "max": 10, "monotone": "increasing"},
                "kind": {"type": "category", "categories": ["a", "b"]},
                "age": {"type": "integer", "min": 18, "max": 99, "gameable": True},
            },
            "unacceptable": [
                {"name": "bad", "case": {"risk": 8, "kind": "b", "age": 20}, "expect": "deny"},
                {"name": "good", "case": {"risk": 1}, "expect": "approve"},
            ],
        }
    )
    policy = RulePolicy(contract)
    # age (gameable) is ignored: the fallback must not trust it
    assert policy.decide({"risk": 9, "kind": "b", "age": 90}).decision == "deny"
    assert policy.decide({"risk": 9, "kind": "a", "age": 20}).decision == "review"
    # an approve case matches the safe side of a monotone feature
    assert policy.decide({"risk": 0, "kind": "a", "age": 50}).decision == "approve"
    assert policy.decide({"risk": 2, "kind": "a", "age": 50}).decision == "review"


def test_monotone_risk_with_a_reference() -> None:
    df = load_credit_default()
    profile = ReferenceProfile.from_frame(df.head(5000), CREDIT)
    policy = RulePolicy(CREDIT, profile, deny_above=0.8, approve_below=0.3)
    assert policy.uses_risk
    risky = {**CREDIT.neutral_record(), "LIMIT_BAL": 10_000, **dict.fromkeys(LATE, 7)}
    safe = {**CREDIT.neutral_record(), "LIMIT_BAL": 800_000, **dict.fromkeys(LATE, -2)}
    out = policy.decide(risky)
    assert (out.decision, out.rule) == ("deny", "monotone_risk") and out.score is not None
    assert policy.decide(safe).decision == "approve"
    described = policy.describe()
    assert "AGE" not in described["monotone_risk"] and "LIMIT_BAL" in described["monotone_risk"]


def test_a_profile_of_another_contract_is_ignored() -> None:
    from tabguard.datasets import card_fraud_contract, make_card_fraud

    other = ReferenceProfile.from_frame(make_card_fraud(500), card_fraud_contract())
    assert not RulePolicy(CREDIT, other).uses_risk


def test_bad_default_is_refused() -> None:
    with pytest.raises(ValueError, match="default"):
        RulePolicy(CREDIT, default="maybe")  # type: ignore[arg-type]
