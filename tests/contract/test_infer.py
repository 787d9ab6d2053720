"""Drafting a contract from data."""

from __future__ import annotations

import pandas as pd
import pytest

from tabguard.contract import infer_contract, validate_frame
from tabguard.datasets import make_card_fraud
from tabguard.errors import DataError


def test_infer_credit(credit_df: pd.DataFrame) -> None:
    c = infer_contract(credit_df, "DEFAULT", name="credit")
    assert c.id == "ID"
    assert c.features["SEX"].protected
    assert c.features["AGE"].type == "integer"
    assert c.features["AGE"].min is not None and c.features["AGE"].min <= 21
    assert c.features["EDUCATION"].type == "category"
    assert validate_frame(credit_df, c).ok  # the draft accepts the data it came from


def test_infer_strings_and_booleans() -> None:
    df = make_card_fraud(2000)
    c = infer_contract(df, "is_fraud")
    assert c.features["channel"].type == "category"
    assert set(c.features["channel"].categories or []) == {
        "in_store",
        "contactless",
        "online",
        "phone",
    }
    assert c.features["card_present"].type == "boolean"
    assert c.features["amount"].type == "number" and c.features["amount"].precision == 2
    assert c.features["gender"].protected
    assert validate_frame(df, c).ok


def test_infer_bad_label() -> None:
    df = pd.DataFrame({"a": [1, 2], "y": [0, None]})
    with pytest.raises(DataError, match="1 missing value"):
        infer_contract(df, "y")
    with pytest.raises(DataError, match="label column 'z' is not in the data"):
        infer_contract(df, "z")
