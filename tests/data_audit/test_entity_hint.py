"""An ignored column that repeats like an account id is named, with a hint to declare it as
the contract's ``entity`` (fresh13's credit panel, session 9: only "ignored" was said)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import contract_from_dict
from tabguard.data_audit import audit_data
from tabguard.data_audit._entity import entity_hints
from tests._orders import seller_orders

CONTRACT = contract_from_dict(
    {
        "name": "panel",
        "label": {"column": "y", "positive": 1},
        "features": {
            "SEX": {"type": "category", "categories": [1, 2]},
            "AGE": {"type": "integer", "min": 18, "max": 100},
            "amount": {"type": "number", "min": 0},
        },
    }
)


def panel(accounts: int = 300, seed: int = 0) -> pd.DataFrame:
    """3-6 months per account; sex and age static, the amount redrawn every month; a row id,
    a batch number and a group number that repeat without static attributes."""
    rng = np.random.default_rng(seed)
    acc = np.repeat(np.arange(accounts), rng.integers(3, 7, accounts))
    n = len(acc)
    return pd.DataFrame(
        {
            "ACCOUNT": acc,
            "ROW": np.arange(n),
            "BATCH": np.arange(n) % 7,
            "GROUP": rng.integers(0, n // 5, n),
            "SEX": rng.integers(1, 3, accounts)[acc],
            "AGE": rng.integers(20, 70, accounts)[acc],
            "amount": np.round(rng.lognormal(5, 1, n), 2),
            "y": (rng.random(n) < 0.3).astype(int),
        }
    )


def test_a_repeating_column_with_static_attributes_is_hinted_as_entity() -> None:
    df = panel()
    hints = entity_hints(df, CONTRACT)
    # not the row id (each value once), the batch (7 values) nor the random group (repeats,
    # but no attribute is constant within it)
    assert [h.column for h in hints] == ["ACCOUNT"]
    assert hints[0].entities == 300 and hints[0].rows == len(df)
    assert hints[0].constant == ("SEX", "AGE")  # the amount changes every month
    assert entity_hints(df, CONTRACT.model_copy(update={"entity": "ACCOUNT"})) == []
    # a repeating column within which nothing declared is constant: no hint
    assert entity_hints(df.assign(SEX=np.resize([1, 2], len(df))), CONTRACT)[0].constant == ("AGE",)
    assert entity_hints(df.drop(columns=["AGE"]).assign(SEX=1), CONTRACT) == []


def test_the_audit_says_declare_it_as_entity() -> None:
    df = panel().drop(columns=["ROW", "BATCH", "GROUP"])
    findings = audit_data(df, CONTRACT, checks=["integrity"]).report.findings
    hint = [f for f in findings if f.evidence.get("rule") == "entity_hint"]
    assert len(hint) == 1 and hint[0].severity == "warning"
    assert "declare it as `entity: ACCOUNT`" in hint[0].message
    assert hint[0].evidence["constant"] == ["SEX", "AGE"]
    declared = CONTRACT.model_copy(update={"entity": "ACCOUNT"})
    findings = audit_data(df, declared, checks=["integrity"]).report.findings
    assert not [f for f in findings if f.evidence.get("rule") == "entity_hint"]


def test_patients_with_one_to_three_stays_are_hinted_as_entity() -> None:
    """1.9 rows per patient (fresh17's readmissions): most rows share their patient."""
    rng = np.random.default_rng(4)
    stays = rng.choice([1, 2, 3], 2_000, p=[0.4, 0.3, 0.3])
    pid = np.repeat(np.arange(2_000), stays)
    n = len(pid)
    assert 1.8 < n / 2_000 < 2.0
    df = pd.DataFrame(
        {
            "patient_id": pid,
            "SEX": rng.integers(1, 3, 2_000)[pid],
            "AGE": rng.integers(20, 90, 2_000)[pid],
            "amount": np.round(rng.lognormal(5, 1, n), 2),
            "y": (rng.random(n) < 0.2).astype(int),
        }
    )
    hints = entity_hints(df, CONTRACT)
    assert [h.column for h in hints] == ["patient_id"] and hints[0].constant == ("SEX", "AGE")
    # the same rows under random visit numbers: repeats, but nothing constant within them
    assert entity_hints(df.assign(patient_id=rng.permutation(pid)), CONTRACT) == []


def test_a_unit_the_label_clusters_by_is_hinted_beside_the_declared_entity() -> None:
    """Orders counted by buyer whose disputes are the sellers' (a few big sellers with their
    own rates): the ignored seller id is hinted as the entity instead (lead, session 15: 13
    false triggers on such orders by buyer, none by seller)."""
    rng = np.random.default_rng(9)
    df, _ = seller_orders(rng)
    n = len(df)
    contract = contract_from_dict(
        {
            "name": "orders",
            "entity": "buyer_id",
            "label": {"column": "dispute", "positive": 1},
            "features": {
                "buyer_country": {"type": "category", "categories": ["DE", "FR", "IT"]},
                "seller_rating": {"type": "number", "min": 3, "max": 5},
                "price": {"type": "number", "min": 0},
            },
        }
    )
    hints = entity_hints(df, contract)
    assert [h.column for h in hints] == ["seller_id"] and hints[0].constant == ("seller_rating",)
    said = hints[0].message()
    assert "the label clusters by it (design effect" in said
    assert "Declare `entity: seller_id`" in said
    # disputes that are nobody's: the declared buyer stands
    flat = df.assign(dispute=(rng.random(n) < 0.1).astype(int))
    assert entity_hints(flat, contract) == []
    # declared as the entity, the seller gets no hint, nor does the buyer beside it
    assert entity_hints(df, contract.model_copy(update={"entity": "seller_id"})) == []
