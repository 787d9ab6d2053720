"""M4: disparate impact of decisions and protected inputs."""

from __future__ import annotations

from tabguard.model_audit import audit_model, load_third_party
from tests.model_audit.conftest import fit_lightgbm
from tests.model_audit.test_model import LinearScorer, toy_contract, toy_frame


def test_four_fifths_rule_warning_with_group_rates():
    df = toy_frame(600)
    # group 2 mostly has category "c" (score + 2): a proxy for the protected attribute
    df.loc[df["g"] == 2, "c"] = "c"
    df.loc[df["g"] == 1, "c"] = "a"
    res = audit_model(LinearScorer(), df, contract=toy_contract(), checks=["fairness"])
    (f,) = [f for f in res.report.findings if f.check == "disparate_impact"]
    assert f.severity == "warning" and f.features == ["g"]
    assert f.evidence["ratio"] < 0.8
    groups = f.evidence["groups"]
    assert groups["1"]["approval_rate"] > groups["2"]["approval_rate"]
    assert {"false_approval_rate", "false_denial_rate", "count"} <= set(groups["1"])


def test_balanced_groups_are_info():
    df = toy_frame(600)
    res = audit_model(LinearScorer(), df, contract=toy_contract(), checks=["fairness"])
    (f,) = [f for f in res.report.findings if f.check == "disparate_impact"]
    assert f.severity == "info" and f.evidence["ratio"] >= 0.8


def test_protected_attribute_as_model_input_is_critical(tmp_path, credit):
    train, ref, contract = credit
    feats = [*contract.model_features(), "SEX"]
    fit_lightgbm(train[feats], train["DEFAULT"], n_estimators=5).save_model(str(tmp_path / "m.txt"))
    model = load_third_party(tmp_path / "m.txt", contract)
    res = audit_model(model, ref, checks=["fairness"])
    crit = [f for f in res.report.findings if f.severity == "critical"]
    assert [(f.check, f.features) for f in crit] == [("unlawful_feature", ["SEX"])]
