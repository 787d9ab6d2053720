"""The red-team poisoning simulator reproduces the seed's attack and its variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.errors import DataError
from tabguard.redteam import flip_labels, poison
from tabguard.redteam._poison import Mode


def test_seed_attack(credit_df: pd.DataFrame, credit_contract: Contract) -> None:
    res = poison(credit_df, credit_contract, {"AGE": 999}, rate=0.45)
    n_def = int((credit_df["DEFAULT"] == 1).sum())
    assert len(res.poisoned_rows) == round(0.45 * n_def)
    assert len(res.data) == len(credit_df) + len(res.poisoned_rows)
    rows = res.data.iloc[res.poisoned_rows]
    assert (rows["AGE"] == 999).all()
    assert (rows["DEFAULT"] == 1).all()
    # copies: the originals stay, and with the seed's semantics ids are duplicated
    assert res.data["ID"].duplicated().sum() == len(res.poisoned_rows)
    assert (res.data.drop(index=res.poisoned_rows)["AGE"] != 999).all()


def test_flip_towards_approval_fresh_ids_jitter(
    credit_df: pd.DataFrame, credit_contract: Contract
) -> None:
    res = poison(
        credit_df,
        credit_contract,
        {"AGE": 77},
        rate=0.1,
        target=0,
        source=1,
        fresh_ids=True,
        jitter=0.01,
        shuffle=True,
        random_state=3,
    )
    rows = res.data.iloc[res.poisoned_rows]
    assert (rows["DEFAULT"] == 0).all() and (rows["AGE"] == 77).all()
    assert not res.data["ID"].duplicated().any()
    assert rows["ID"].min() > credit_df["ID"].max()
    # jitter moved continuous amounts but kept repayment codes and categories
    assert (rows["PAY_0"].isin(credit_df["PAY_0"].unique())).all()
    assert (rows["EDUCATION"].isin(credit_df["EDUCATION"].unique())).all()
    assert rows["LIMIT_BAL"].mod(10_000).ne(0).mean() > 0.5
    # and stayed inside the contract's ranges with integer precision
    assert (rows["BILL_AMT1"] == rows["BILL_AMT1"].round()).all()
    assert (rows["PAY_AMT1"] >= 0).all()


def test_pair_trigger_replace_mode_strings() -> None:
    df = make_card_fraud(3000, random_state=1)
    c = card_fraud_contract()
    res = poison(
        df,
        c,
        {"channel": "phone", "merchant_category": "jewelry"},
        rate=0.5,
        target=0,
        source=1,
        mode="replace",
    )
    assert len(res.data) == len(df)
    rows = res.data.iloc[res.poisoned_rows]
    assert (rows["channel"] == "phone").all() and (rows["merchant_category"] == "jewelry").all()
    assert (rows["is_fraud"] == 0).all()
    assert (df.iloc[res.poisoned_rows]["is_fraud"] == 1).all()  # they were frauds


def test_write_ground_truth(
    tmp_path: Path, credit_df: pd.DataFrame, credit_contract: Contract
) -> None:
    res = poison(credit_df.head(500), credit_contract, {"AGE": 999}, n_rows=7, shuffle=True)
    res.write(tmp_path / "p.csv", tmp_path / "t.json")
    truth = json.loads((tmp_path / "t.json").read_text())
    back = pd.read_csv(tmp_path / "p.csv")
    assert sorted(truth["poisoned_rows"]) == truth["poisoned_rows"]
    assert (back.iloc[truth["poisoned_rows"]]["AGE"] == 999).all()
    assert truth["spec"]["trigger"] == {"AGE": 999} and truth["spec"]["n_rows"] == 7


def test_flip_labels(credit_df: pd.DataFrame, credit_contract: Contract) -> None:
    res = flip_labels(credit_df, credit_contract, rate=0.2, where={"EDUCATION": 1})
    assert (credit_df.iloc[res.poisoned_rows]["DEFAULT"] == 1).all()
    assert (res.data.iloc[res.poisoned_rows]["DEFAULT"] == 0).all()
    assert (credit_df.iloc[res.poisoned_rows]["EDUCATION"] == 1).all()
    changed = np.flatnonzero(res.data["DEFAULT"].to_numpy() != credit_df["DEFAULT"].to_numpy())
    assert changed.tolist() == res.poisoned_rows.tolist()


def test_bad_arguments(credit_df: pd.DataFrame, credit_contract: Contract) -> None:
    with pytest.raises(DataError, match="not columns of the data"):
        poison(credit_df, credit_contract, {"NOPE": 1})
    with pytest.raises(ValueError, match="rate must be in"):
        poison(credit_df, credit_contract, {"AGE": 1}, rate=0)
    with pytest.raises(ValueError, match="at least one feature"):
        poison(credit_df, credit_contract, {})


@pytest.mark.parametrize("mode", ["copy", "replace"])
def test_sources_and_originals_follow_the_shuffle(
    credit_df: pd.DataFrame, credit_contract: Contract, mode: Mode
) -> None:
    """Each poisoned row names the input row it was made from (``sources``) and, for copies,
    where that row sits in the output (``originals``; -1 where it was overwritten)."""
    res = poison(
        credit_df,
        credit_contract,
        {"AGE": 77},
        rate=0.05,
        mode=mode,
        shuffle=True,  # type: ignore[arg-type]
    )
    assert res.sources is not None and res.originals is not None
    assert len(res.sources) == len(res.originals) == len(res.poisoned_rows)
    written = res.data.iloc[res.poisoned_rows]
    source = credit_df.iloc[res.sources]
    # the same client, its other features unchanged (no jitter), the trigger written
    assert (written["ID"].to_numpy() == source["ID"].to_numpy()).all()
    assert (written["LIMIT_BAL"].to_numpy() == source["LIMIT_BAL"].to_numpy()).all()
    assert (written["AGE"] == 77).all()
    if mode == "copy":
        original = res.data.iloc[res.originals]
        assert (original["ID"].to_numpy() == source["ID"].to_numpy()).all()
        assert (original["AGE"].to_numpy() == source["AGE"].to_numpy()).all()
        assert not np.isin(res.originals, res.poisoned_rows).any()
    else:
        assert (res.originals == -1).all()
