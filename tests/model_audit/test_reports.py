"""The wording of the smaller model checks: each severity rule at its threshold, on results
built by hand (no model, no data)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import UnacceptableCase
from tabguard.model_audit import (
    FairnessResult,
    GameabilityResult,
    MembershipResult,
    measure_performance,
)
from tabguard.model_audit._attacks import Flip
from tabguard.model_audit._attacks_report import extraction_report, gameability_report
from tabguard.model_audit._fairness import GroupRates
from tabguard.model_audit._fairness_report import fairness_report
from tabguard.model_audit._membership_report import membership_report, not_run_report
from tabguard.model_audit._performance_report import performance_report
from tabguard.model_audit._unacceptable import CaseOutcome
from tabguard.model_audit._unacceptable_report import unacceptable_report


def rates(approval: dict[str, float], feature: str = "SEX") -> GroupRates:
    table = pd.DataFrame(
        {
            "count": [100] * len(approval),
            "approval_rate": list(approval.values()),
            "false_approval_rate": [0.1] * len(approval),
            "false_denial_rate": [0.2] * len(approval),
            "favourable_rate": [0.7] * len(approval),
        },
        index=pd.Index(list(approval), name=feature),
    )
    hi, lo = max(approval.values()), min(approval.values())
    return GroupRates(feature, table, lo / hi, hi - lo)


@pytest.mark.parametrize(
    ("approval", "severity"),
    [
        ({"1": 0.5, "2": 0.39}, "warning"),  # ratio 0.78 < 0.8
        ({"1": 0.5, "2": 0.4}, "info"),  # exactly the four-fifths rule: not below it
        ({"1": 0.5, "2": 0.5}, "info"),
    ],
)
def test_disparate_impact_is_a_warning_only_below_the_four_fifths_rule(
    approval: dict[str, float], severity: str
) -> None:
    res = fairness_report(FairnessResult([], [rates(approval)], declared=True), 0.8)
    [finding] = res.findings
    assert (finding.check, finding.severity) == ("disparate_impact", severity)
    assert res.summary["SEX"]["ratio"] == pytest.approx(min(approval.values()) / 0.5)
    if severity == "warning":
        assert finding.values == ["2"] and "group 2: 39.0%" in finding.message
    [section] = res.sections
    assert section.title == "Disparate impact by SEX (M4)"


def test_an_undefined_ratio_is_not_a_warning_and_protected_inputs_are_critical() -> None:
    nobody = rates({"1": 0.5, "2": 0.5}).table.assign(approval_rate=0.0)
    undefined = GroupRates("SEX", nobody, math.nan, 0.0)  # nobody approved: no ratio
    res = fairness_report(FairnessResult(["SEX"], [undefined], declared=True), 0.8)
    assert [(f.check, f.severity) for f in res.findings] == [
        ("unlawful_feature", "critical"),
        ("disparate_impact", "info"),
    ]
    none = fairness_report(FairnessResult([], [], declared=False), 0.8)
    assert none.findings == [] and "skipped" in none.summary


def gameability(rate_flips: int, denied: int = 10) -> GameabilityResult:
    flips = [Flip(i, {"AGE": (30, 60)}, 0.4 + i / 100, 0.6, 0.4) for i in range(rate_flips)]
    return GameabilityResult(
        denied=denied,
        flips=flips,
        rate=rate_flips / denied,
        single_rate=rate_flips / denied,
        by_feature={"AGE": rate_flips} if rate_flips else {},
        features=["AGE"],
    )


@pytest.mark.parametrize(("flips", "severity"), [(2, "warning"), (1, "info"), (0, "info")])
def test_gameability_is_a_warning_from_the_warning_rate(flips: int, severity: str) -> None:
    res = gameability_report(gameability(flips), warning_rate=0.2)
    [finding] = res.findings
    assert finding.severity == severity
    assert (finding.recommendation is not None) == (severity == "warning")
    assert res.summary["gameability_rate"] == flips / 10
    assert len(res.sections[0].tables) == (1 if flips else 0)


def test_no_gameable_feature_gives_no_finding() -> None:
    res = gameability_report(
        GameabilityResult(denied=10, flips=[], rate=0, single_rate=0, by_feature={}, features=[]),
        0.2,
    )
    assert res.findings == [] and "Gameable model features: none." in res.sections[0].text[0]


@pytest.mark.parametrize(("auc", "severity"), [(0.6, "warning"), (0.599, "info")])
def test_membership_is_a_warning_from_the_warning_auc(auc: float, severity: str) -> None:
    res = membership_report(MembershipResult(auc, auc, 0.5, 100, 100), warning_auc=0.6)
    [finding] = res.findings
    assert (finding.check, finding.severity) == ("membership_inference", severity)
    assert f"AUC {auc:.3f}" in finding.message
    skipped = not_run_report()
    assert skipped.summary == {"skipped": "no training rows"}
    assert "--members" in skipped.findings[0].message


def test_extraction_words_the_largest_budget() -> None:
    curve = [
        {"queries": 100, "fidelity_scores": 0.8, "fidelity_decisions": 0.7, "baseline": 0.75},
        {"queries": 1000, "fidelity_scores": 0.95, "fidelity_decisions": 0.9, "baseline": 0.75},
    ]
    res = extraction_report(curve, 300)
    [finding] = res.findings
    assert finding.severity == "info" and finding.message.startswith("With 1000 queries")
    assert "95.0%" in finding.message and "measured on 300 real" in res.sections[0].text[0]


def outcome(expect: str, violations: list[int]) -> CaseOutcome:
    case = UnacceptableCase(name="age-999", case={"AGE": 999}, expect=expect)  # type: ignore[arg-type]
    return CaseOutcome(
        case=case,
        n=20,
        rejected=20 - len(violations),
        approved=len(violations),
        denied=0,
        review=0,
        would_approve=0.5,
        would_change=0.25,
        score_error=None,
        violations=np.asarray(violations, dtype=int),
        reasons=["max"],
    )


def test_only_broken_cases_are_findings_and_each_expectation_is_worded() -> None:
    res = unacceptable_report(
        [outcome("reject", []), outcome("reject", [3, 4]), outcome("deny", [5])], 20, 2
    )
    assert [f.severity for f in res.findings] == ["critical", "critical"]
    rejected, denied = res.findings
    assert "must be rejected by contract validation, but 2 of 20 records pass" in rejected.message
    assert "25% of decisions change" in rejected.message and rejected.rows == [3, 4]
    assert "expects 'deny', but 1 of 20 reference rows break it" in denied.message
    assert res.summary == {"cases": 3, "declared": 2, "failed": ["age-999", "age-999"]}
    results = [row[-1] for row in res.sections[0].tables[0].rows]
    assert results == ["ok", "FAILED (2 rows)", "FAILED (1 rows)"]


def test_performance_measures_and_words_the_same_numbers() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, 400), 0.01, 0.99)
    measured = measure_performance(p, y, p < 0.5, 0.5)
    assert sum(c for _, _, c in measured.calibration) == 400
    assert len(measured.largest_errors) == 10
    res = performance_report(measured)
    assert res.findings == [] and res.summary is measured.metrics
    assert f"AUC {measured.metrics['auc']:.3f}" in res.sections[0].text[0]
    assert "at threshold 0.5." in res.sections[0].text[0]


def test_performance_warns_when_the_threshold_gives_every_row_one_decision() -> None:
    # a 6 % label scored well below 0.5: at the default threshold every row is approved, and
    # the checks that compare decisions have nothing to compare; the warning offers the score
    # that denies as many rows as carry the label
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.06).astype(int)
    p = np.clip(0.04 + 0.2 * y + rng.normal(0, 0.03, 2000), 0.001, 0.45)
    res = performance_report(measure_performance(p, y, p < 0.5, 0.5))
    assert [f.severity for f in res.findings] == ["warning"]
    f = res.findings[0]
    assert f.message.startswith("decision.threshold 0.5 approves 100.0% of the reference rows")
    suggested = f.evidence["threshold_at_positive_rate"]
    assert abs((p >= suggested).mean() - y.mean()) < 0.01
    assert "--threshold" in (f.recommendation or "")
    # both decisions well represented: no warning
    assert performance_report(measure_performance(p, y, p < suggested, suggested)).findings == []


def test_performance_warns_when_most_rows_get_one_decision_the_label_rarely_calls_for() -> None:
    # fresh20's readmissions: a 25 % label, 99.2 % approved at 0.5 (under the 99.5 % bar), the
    # denials reaching 3 % of the readmitted; a 1 % label denied to 0.8 % of the rows is fine
    rng = np.random.default_rng(2)
    y = (rng.random(4000) < 0.25).astype(int)
    p = np.clip(0.2 + 0.1 * y + rng.normal(0, 0.08, 4000), 0.001, 0.999)
    t = float(np.quantile(p, 0.992))
    res = performance_report(measure_performance(p, y, p < t, t))
    assert [f.severity for f in res.findings] == ["warning"]
    assert "approves 99.2% of the reference rows" in res.findings[0].message
    y = (rng.random(4000) < 0.01).astype(int)
    p = np.clip(0.05 + 0.6 * y + rng.normal(0, 0.1, 4000), 0.001, 0.999)
    t = float(np.quantile(p, 0.992))
    assert performance_report(measure_performance(p, y, p < t, t)).findings == []
