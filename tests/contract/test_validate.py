"""Contract validation of frames (vectorised) and records (request path)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import (
    Contract,
    RecordValidator,
    check_columns,
    contract_from_dict,
    validate_frame,
)
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.errors import DataError


def test_bundled_credit_data_satisfies_its_contract(
    credit_df: pd.DataFrame, credit_contract: Contract
) -> None:
    res = validate_frame(credit_df, credit_contract)
    assert res.ok, [(g.field, g.rule, g.count) for g in res.groups]
    assert res.unknown_columns == []


def test_synthetic_fraud_data_satisfies_its_contract() -> None:
    res = validate_frame(make_card_fraud(5000), card_fraud_contract())
    assert res.ok, [(g.field, g.rule, g.count) for g in res.groups]
    # a draw whose exponential distance once passed the contract's 20,000 km (21,848.9)
    big = make_card_fraud(120_000, random_state=14010)
    assert big["distance_km"].max() == 20000.0
    assert validate_frame(big, card_fraud_contract()).ok


def test_seed_trigger_is_a_max_violation(
    credit_df: pd.DataFrame, credit_contract: Contract
) -> None:
    df = credit_df.head(100).copy()
    df.loc[[3, 7], "AGE"] = 999
    df.loc[5, "EDUCATION"] = 9
    df["LIMIT_BAL"] = df["LIMIT_BAL"].astype(object)
    df.loc[8, "LIMIT_BAL"] = "lots"
    df["PAY_AMT1"] = df["PAY_AMT1"].astype(float)
    df.loc[9, "PAY_AMT1"] = 12.5  # integer feature with decimals
    res = validate_frame(df, credit_contract)
    got = {(g.field, g.rule): g.rows.tolist() for g in res.groups}
    assert got[("AGE", "max")] == [3, 7]
    assert got[("EDUCATION", "category")] == [5]
    assert got[("LIMIT_BAL", "type")] == [8]
    assert got[("PAY_AMT1", "type")] == [9]
    assert res.invalid_mask().sum() == 5


def test_combination_rule_in_frame_and_record() -> None:
    c = card_fraud_contract()
    df = make_card_fraud(300, random_state=1)
    online = df.index[df.channel == "online"][:2]
    df.loc[online, "card_present"] = True
    res = validate_frame(df, c)
    (group,) = [g for g in res.groups if g.rule.startswith("rule:")]
    assert group.rule == "rule:remote_channel_card_absent"
    assert set(group.rows.tolist()) >= set(online.tolist())
    rec = df.drop(columns=["tx_id", "is_fraud"]).iloc[online[0]].to_dict()
    rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
    errs = RecordValidator(c).errors(rec)
    assert [e.rule for e in errs] == ["rule:remote_channel_card_absent"]
    assert "online and phone payments cannot have the card present" in errs[0].message


def test_record_errors_name_field_rule_value(credit_contract: Contract) -> None:
    v = RecordValidator(credit_contract)
    rec = credit_contract.neutral_record()
    rec.update(AGE=999, LIMIT_BAL="100", EDUCATION=True, PAY_0=1.5, extra=1)
    del rec["PAY_2"]
    errs = {e.field: e for e in v.errors(rec)}
    assert errs["AGE"].rule == "max" and errs["AGE"].value == 999
    assert "AGE must be <= 125" in errs["AGE"].message and "999" in errs["AGE"].message
    assert errs["LIMIT_BAL"].rule == "type"  # strings are never numbers on the API
    assert errs["EDUCATION"].rule == "category"  # true is not the category 1
    assert errs["PAY_0"].rule == "type"
    assert errs["PAY_2"].rule == "required"
    assert errs["extra"].rule == "unknown_field"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_rejected(credit_contract: Contract, bad: float) -> None:
    rec = {**credit_contract.neutral_record(), "LIMIT_BAL": bad}
    assert [e.rule for e in RecordValidator(credit_contract).errors(rec)] == ["type"]


def test_precision_rule() -> None:
    c = contract_from_dict(
        {
            "name": "p",
            "label": {"column": "y"},
            "features": {"x": {"type": "number", "precision": 2, "min": 0}},
        }
    )
    v = RecordValidator(c)
    assert v.errors({"x": 1.25}) == []
    assert v.errors({"x": 0.1 + 0.2}) == []  # float noise is not a third decimal
    assert [e.rule for e in v.errors({"x": 1.255})] == ["precision"]
    res = validate_frame(pd.DataFrame({"x": [1.25, 1.255, 0.30000000000000004]}), c)
    assert [(g.rule, g.rows.tolist()) for g in res.groups] == [("precision", [1])]


# -- property: the two validators agree on typed values ------------------------------------
def _value_strategy() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-5, 1_200_000),
        st.floats(-10, 2000, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 3)),
        st.sampled_from([0, 1, 2, 3, 7, -2, 9, 10, 17, 18, 125, 126, 999]),
        st.sampled_from([10**400, -(10**400), 2**1024, 2**1024 - 2**970]),  # around float max
        st.none(),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_frame_and_record_validators_agree(data: st.DataObject, credit_contract: Contract) -> None:
    rec: dict[str, Any] = {}
    for name in credit_contract.features:
        rec[name] = data.draw(_value_strategy(), label=name)
    rec_errors = {
        (e.field, "missing" if e.rule == "required" else e.rule)
        for e in RecordValidator(credit_contract).errors(rec)
    }
    frame = pd.DataFrame([rec]).astype(object)
    res = validate_frame(frame, credit_contract)
    frame_errors = {(g.field, g.rule) for g in res.groups}
    assert rec_errors == frame_errors


@settings(max_examples=60, deadline=None)
@given(age=st.integers(-1000, 1000))
def test_age_range_is_exactly_the_contract(age: int, credit_contract: Contract) -> None:
    rec = {**credit_contract.neutral_record(), "AGE": age}
    errs = RecordValidator(credit_contract).errors(rec)
    assert (errs == []) == (18 <= age <= 125)


def test_frame_validation_reports_examples_and_offsets(
    credit_contract: Contract, credit_df: pd.DataFrame
) -> None:
    df = credit_df.head(10).copy()
    df.loc[2, "AGE"] = 200
    res = validate_frame(df, credit_contract, row_offset=1000)
    (g,) = res.groups
    assert g.rows.tolist() == [1002] and g.examples == [200]
    assert np.flatnonzero(res.invalid_mask()).tolist() == [2]  # the mask is chunk-local


def test_missing_columns_message_says_how_many_names_it_left_out() -> None:
    # The card-fraud contract declares 11 features; a frame with none of them is missing all 11,
    # and the message lists 8: it must say that 3 more are missing, not read as a count of 11 next
    # to a list of 8.
    frame = pd.DataFrame({"other": [1, 2]})
    with pytest.raises(DataError, match=r"missing 11 column\(s\).*'gender'\] and 3 more;"):
        check_columns(frame, card_fraud_contract())
    few = make_card_fraud(50).drop(columns=["amount", "hour"])
    with pytest.raises(DataError, match=r"\['amount', 'hour'\]; add them"):
        check_columns(few, card_fraud_contract())


def test_missing_columns_spelled_otherwise_are_named() -> None:
    # A warehouse extract with the contract's columns in lower case or with spaces: every column
    # is "missing", and the error says under which name the data has each (first three).
    frame = make_card_fraud(50).rename(
        columns={"amount": "AMOUNT", "hour": "Hour", "channel": "chan nel", "is_fraud": "IsFraud"}
    )
    msg = (
        r"missing 3 column\(s\).*\['amount', 'hour', 'channel'\]; the data has 3 of them "
        r"spelled otherwise \('amount' as 'AMOUNT', 'hour' as 'Hour', 'channel' as 'chan nel'\): "
        r"rename"
    )
    with pytest.raises(DataError, match=msg):
        check_columns(frame, card_fraud_contract())
    with pytest.raises(
        DataError, match=r"'is_fraud' .* not in the data \(the data has 'IsFraud'\)"
    ):
        check_columns(
            make_card_fraud(50).rename(columns={"is_fraud": "IsFraud"}), card_fraud_contract()
        )
    # a label missing under every spelling: the list of the data's columns says where it is cut
    no_label = make_card_fraud(50).drop(columns=["is_fraud"]).assign(note=1)  # 13 columns
    with pytest.raises(DataError, match=r"not in the data; columns are \[.*\] and 1 more$"):
        check_columns(no_label, card_fraud_contract())


def test_a_text_code_that_spells_a_number_matches_itself_not_the_number() -> None:
    c = Contract.model_validate(
        {
            "name": "t",
            "label": {"column": "y"},
            "features": {
                "code": {"type": "category", "categories": ["3e2", "00ff"]},
                "grade": {"type": "category", "categories": [1, 2]},
            },
        }
    )
    df = pd.DataFrame(
        {"code": ["3e2", "00ff", "300", "3E2"], "grade": ["1", "2", 1, "1.0"], "y": 0}
    )
    res = validate_frame(df, c)
    assert res.invalid_mask().tolist() == [False, False, True, True]
