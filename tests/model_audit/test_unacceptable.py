"""M2: unacceptable cases from the contract and automatic range cases."""

from __future__ import annotations

from tabguard.model_audit import audit_model, automatic_cases, load_third_party
from tests.model_audit.test_model import LinearScorer, toy_contract, toy_frame


def _cases(contract_updates: list[dict]) -> object:
    c = toy_contract()
    data = c.model_dump(by_alias=True, exclude_none=True)
    data["unacceptable"] = contract_updates
    return type(c).model_validate(data)


def test_automatic_cases_cover_every_bound_and_category():
    names = {c.name: c for c in automatic_cases(toy_contract())}
    assert names["auto:x:below_min"].case == {"x": -1.0}
    assert names["auto:x:above_max"].case == {"x": 11.0}
    assert names["auto:n:above_max"].case == {"n": 101}
    assert names["auto:c:unknown_category"].case == {"c": "__unknown__"}
    assert names["auto:g:unknown_category"].case == {"g": 3}
    assert all(c.expect == "reject" for c in names.values())


def test_expectations_pass_and_fail_as_declared():
    c = _cases(
        [
            {"name": "too_big", "case": {"x": 11}, "expect": "reject"},
            {"name": "valid_but_must_reject", "case": {"x": 5}, "expect": "reject"},
            {"name": "high_x_denied", "case": {"x": 10, "c": "c"}, "expect": "deny"},
            {"name": "high_x_approved", "case": {"x": 10}, "expect": "approve"},
            {"name": "low_x_not_approved", "case": {"x": 0}, "expect": "not_approve"},
        ]
    )
    res = audit_model(
        LinearScorer(),
        toy_frame(),
        contract=c,
        checks=["unacceptable"],
        options={"unacceptable": {"rows": 50}},
    )
    failed = {f.evidence["case"]: f for f in res.report.findings}
    assert set(failed) == {"valid_but_must_reject", "high_x_approved", "low_x_not_approved"}
    assert all(f.severity == "critical" for f in failed.values())
    assert failed["valid_but_must_reject"].evidence["rejected"] == 0
    assert failed["high_x_approved"].evidence["denied"] == 50
    summary = res.report.summary["checks"]["unacceptable"]
    assert summary["declared"] == 5 and summary["cases"] > 5  # automatic cases ran too


def test_seed_case_is_rejected_and_what_the_model_would_do(credit, credit_models):
    _, ref, contract = credit
    model = load_third_party(credit_models["poisoned"], contract)
    res = audit_model(model, ref, checks=["unacceptable"], options={"unacceptable": {"rows": 80}})
    failed = {f.evidence["case"] for f in res.report.findings}
    assert "impossible_age" not in failed  # AGE=999 never reaches the model
    table = res.report.sections[-1].tables[0]
    row = next(r for r in table.rows if r[0] == "impossible_age")
    assert row[3] == "80/80"
    assert row[7] > 0.5  # but the backdoored model would change most decisions
