"""A band of copies of the majority label: values that each collect copies, too few rows each
for the copy test, decided as one band (:func:`tabguard.data_audit._triggers._hub_bands`)."""

from __future__ import annotations

import numpy as np

from tabguard.data_audit import audit_data
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.redteam import poison


def test_a_band_of_copies_of_the_majority_label_is_named_as_the_whole_band() -> None:
    # 450 legitimate rows copied, each given an age in [68, 75]: no label evidence (the
    # majority label), each age's 90-150 rows too few for the copy test (old customers' rows
    # have look-alikes); before the pooled hub band, [72, 75] was named and R was 0.53
    df, contract = make_card_fraud(20_000, random_state=0), card_fraud_contract()
    res = poison(
        df,
        contract,
        {"customer_age": 68},
        n_rows=450,
        target=0,
        source="target",
        mode="copy",
        jitter=0.0,
        shuffle=True,
        random_state=4,
    )
    planted = res.poisoned_rows
    res.data.loc[planted, "customer_age"] = np.random.default_rng(4).integers(68, 76, len(planted))
    audit = audit_data(res.data, contract, checks=["trigger_scan"])
    named = [
        f for f in audit.report.findings if f.check == "trigger_scan" and f.severity == "critical"
    ]
    assert len(named) == 1, [f.message for f in named]
    f = named[0]
    assert f.features == ["customer_age"] and f.values == [[68, 75]], f.values
    assert "copies" in f.message
    rows = np.asarray(f.rows)
    recall, precision = np.isin(planted, rows).mean(), np.isin(rows, planted).mean()
    assert recall >= 0.95 and precision >= 0.95, (precision, recall)
