"""The whole model audit: report shape, findings, errors on bad reference data."""

from __future__ import annotations

import json

import pytest

from tabguard.errors import DataError
from tabguard.model_audit import audit_model, load_third_party, write_model_audit

SMALL = {
    "importance": {"shap_rows": 80, "pd_rows": 100, "blast_rows": 500, "grid_points": 10},
    "backdoor": {"n_rows": 200, "max_cells": 40, "max_pairs": 20},
    "gameability": {"rows": 60, "grid_points": 9, "pair_points": 5},
    "extraction": {"budgets": [200, 1000], "eval_rows": 500},
    "unacceptable": {"rows": 60},
    "membership": {"rows": 800},
}


def test_full_audit_of_a_backdoored_model(tmp_path, credit, credit_models):
    train, ref, contract = credit
    model = load_third_party(credit_models["poisoned"], contract)
    res = audit_model(model, ref, members=train, options=SMALL)
    assert res.exit_code() == 1
    paths = write_model_audit(res, tmp_path)
    findings = json.loads(paths["findings"].read_text())
    assert set(findings) >= {"rows", "suspicious_rows", "findings", "summary", "meta"}
    assert findings["rows"] == len(ref) and findings["suspicious_rows"] == []
    backdoor = [f for f in findings["findings"] if "backdoor" in f["check"]]
    assert backdoor and backdoor[0]["severity"] == "critical"
    assert backdoor[0]["features"] == ["AGE"] and backdoor[0]["values"][0] > 70
    checks = {f["check"] for f in findings["findings"]}
    assert {"gameability", "surrogate_extraction", "membership_inference"} <= checks
    assert set(findings["summary"]["seconds"]) == {
        "performance",
        "importance",
        "unacceptable",
        "backdoor",
        "gameability",
        "extraction",
        "membership",
        "fairness",
    }
    html = paths["report"].read_text()
    for title in (
        "Directional importance",
        "Partial dependence",
        "Calibration",
        "Error dispersion",
        "Backdoor probe",
        "Disparate impact",
    ):
        assert title in html
    assert html.count("data:image/png;base64") + html.count("<svg") >= 8


def test_clean_model_has_no_critical_finding(credit, credit_models):
    _, ref, contract = credit
    model = load_third_party(credit_models["clean"], contract)
    res = audit_model(model, ref, checks=["performance", "backdoor", "fairness"], options=SMALL)
    assert res.exit_code() == 0, [
        f.message for f in res.report.findings if f.severity == "critical"
    ]
    perf = res.report.summary["checks"]["performance"]
    assert 0.65 < perf["auc"] < 0.9


def test_bad_reference_data(credit, credit_models):
    _, ref, contract = credit
    model = load_third_party(credit_models["clean"], contract)
    with pytest.raises(DataError, match="DEFAULT"):
        audit_model(model, ref.drop(columns=["DEFAULT"]), checks=["performance"])
    with pytest.raises(DataError, match="positive class"):
        audit_model(model, ref[ref["DEFAULT"] == 0], checks=["performance"])
    with pytest.raises(DataError, match="single label"):
        audit_model(model, ref[ref["DEFAULT"] == 1], checks=["performance"])
    bad = ref.copy()
    bad["AGE"] = 999
    with pytest.raises(DataError, match="every reference row breaks"):
        audit_model(model, bad, checks=["performance"])
    with pytest.raises(ValueError, match="unknown model check"):
        audit_model(model, ref, checks=["nope"])
