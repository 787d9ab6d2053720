"""A value that breaks the contract, written in place, whose labels hint at a trigger that no
rule confirms (issue 11, class 3): the integrity check quarantines its rows, and the trigger
scan's warning says what their labels show, so that it reads as a likely trigger."""

from __future__ import annotations

import numpy as np

from tabguard.data_audit import audit_data
from tests.data_audit._synthetic import natural_rows, synthetic_contract


def test_a_contract_breaking_value_whose_labels_hint_is_named_in_a_warning() -> None:
    # status=9 (the contract's max is 8) written into 200 random rows, 30 % of them labelled
    # 1 (the base rate about 20 %): no copies, labels short of the written-rows rule
    df = natural_rows(6000, 7, e_risk=0.2, age=True)
    rng = np.random.default_rng(8)
    rows = np.sort(rng.choice(len(df), 200, replace=False))
    df.loc[rows, "status"] = 9
    df.loc[rows, "y"] = (rng.random(200) < 0.3).astype(int)
    audit = audit_data(
        df, synthetic_contract("hint", age=True), checks=["integrity", "trigger_scan"]
    )
    scan = [f for f in audit.report.findings if f.check == "trigger_scan"]
    assert not [f for f in scan if f.severity == "critical"]
    (hint,) = [f for f in scan if f.severity == "warning"]
    assert hint.features == ["status"] and hint.values == [9]
    assert "may be a backdoor trigger" in hint.message and "integrity check" in hint.message
    assert hint.evidence["label"] == 1
    quarantined = audit.quarantine["tabguard_row"].to_numpy()
    assert np.isin(rows, quarantined).all()  # by the integrity check
