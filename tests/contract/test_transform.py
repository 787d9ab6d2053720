"""Train/serve parity of the contract transform, and its sanitisation steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.contract import Contract, FeatureTransform, TransformOptions
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.errors import ContractError


def test_protected_and_id_never_reach_the_model(credit_contract: Contract) -> None:
    ft = FeatureTransform(credit_contract)
    assert "SEX" not in ft.feature_names
    assert "ID" not in ft.feature_names and "DEFAULT" not in ft.feature_names
    assert len(ft.feature_names) == 22


def test_clip_bins_neutral(credit_contract: Contract) -> None:
    ft = FeatureTransform(
        credit_contract, TransformOptions(bins=("AGE",), neutralize=("PAY_AMT1",))
    )
    rec = {**credit_contract.neutral_record(), "AGE": 97, "PAY_AMT1": 999_999}
    x, actions = ft.transform_record(rec)
    j = ft.feature_names.index("AGE")
    # clip to [18, 80] first, then the bin [60, 125) gives its left edge
    assert x[0, j] == 60
    assert x[0, ft.feature_names.index("PAY_AMT1")] == 2100
    assert {"clip:AGE", "bin:AGE", "neutralize:PAY_AMT1"} <= set(actions)


def test_runtime_neutralise_and_drop(credit_contract: Contract) -> None:
    ft = FeatureTransform(credit_contract, TransformOptions(drop=("AGE",)))
    assert "AGE" not in ft.feature_names
    rec = {**credit_contract.neutral_record(), "PAY_AMT2": 50_000}
    x, actions = ft.transform_record(rec, neutralize=["PAY_AMT2"])
    assert x[0, ft.feature_names.index("PAY_AMT2")] == 2000
    assert actions == ["neutralize:PAY_AMT2"]


def test_options_errors(credit_contract: Contract) -> None:
    with pytest.raises(ContractError, match=r"features.SEX.bins: coarse binning needs bin edges"):
        FeatureTransform(credit_contract, TransformOptions(bins=("SEX",)))
    with pytest.raises(ContractError, match=r"features.LIMIT_BAL.neutral"):
        FeatureTransform(credit_contract, TransformOptions(neutralize=("LIMIT_BAL",)))
    with pytest.raises(ContractError, match="must name features"):
        FeatureTransform(credit_contract, TransformOptions(drop=("NOPE",)))


def test_parity_on_real_rows(credit_contract: Contract, credit_df: pd.DataFrame) -> None:
    ft = FeatureTransform(credit_contract, TransformOptions(bins=("AGE", "PAY_AMT1")))
    sample = credit_df.sample(300, random_state=0)
    X = ft.transform_frame(sample)
    for i, (_, row) in enumerate(sample.iterrows()):
        rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        x, _ = ft.transform_record(rec)
        np.testing.assert_array_equal(x[0], X[i])


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_parity_property_fraud(data: st.DataObject) -> None:
    c = card_fraud_contract()
    opts = TransformOptions(
        bins=tuple(data.draw(st.sets(st.sampled_from(["amount", "hour"])))),
        neutralize=tuple(data.draw(st.sets(st.sampled_from(["channel", "amount"])))),
    )
    ft = FeatureTransform(c, opts)
    base = make_card_fraud(50, random_state=data.draw(st.integers(0, 5)))
    rows: list[dict[str, Any]] = []
    for i in range(3):
        r = {k: (v.item() if hasattr(v, "item") else v) for k, v in base.iloc[i].items()}
        r["amount"] = data.draw(st.floats(0.01, 60_000).map(lambda v: round(v, 2)))
        r["hour"] = data.draw(st.integers(0, 23))
        rows.append(r)
    X = ft.transform_frame(pd.DataFrame(rows))
    for i, r in enumerate(rows):
        x, _ = ft.transform_record(r)
        np.testing.assert_array_equal(x[0], X[i])
    # clipping bounds every numeric model input by the contract's clip range
    assert np.all(X[:, ft.feature_names.index("amount")] <= 20_000)
