"""M3: minimal flips and the gameability rate, surrogate extraction, membership inference."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.model_audit import (
    as_audited_model,
    extraction_curve,
    membership_attack,
    minimal_flips,
)
from tabguard.model_audit._model import RawMatrix
from tests.model_audit.test_model import LinearScorer, toy_contract, toy_frame


def test_every_denied_applicant_can_lower_x():
    m = as_audited_model(LinearScorer(), toy_contract())
    X = m.encode(toy_frame(300))
    denied = np.flatnonzero(~m.approve(m.predict_matrix(X)))
    res = minimal_flips(m, X[denied], denied, X)
    assert res.denied == len(denied) > 0
    assert res.rate == 1.0 and res.single_rate == 1.0
    assert res.by_feature == {"x": len(denied)}
    for fl in res.flips[:20]:
        ((before, after),) = fl.changes.values()
        assert after < before and fl.score_after < 0.5 <= fl.score_before and fl.cost > 0


def test_no_gameable_feature_no_flip():
    c = toy_contract().with_updates(x={"gameable": False})
    m = as_audited_model(LinearScorer(), c)
    X = m.encode(toy_frame(100))
    res = minimal_flips(m, X[:10], np.arange(10), X)
    assert res.features == [] and res.rate == 0.0


def test_pairs_are_tried_when_one_feature_is_not_enough():
    class NeedsTwo:
        def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
            # denied unless both x <= 2 and n <= 20
            return np.where((df["x"] <= 2) & (df["n"] <= 20), 0.1, 0.9)

    c = toy_contract().with_updates(n={"gameable": True})
    m = as_audited_model(NeedsTwo(), c)
    X = m.encode(toy_frame(200))
    denied = np.flatnonzero(~m.approve(m.predict_matrix(X)))
    res = minimal_flips(m, X[denied], denied, X)
    # rows already below one bound flip with one change, the others need both
    assert res.rate == 1.0 and res.single_rate < 0.5
    assert sum(len(f.changes) == 2 for f in res.flips) == round((1 - res.single_rate) * res.denied)


def test_surrogate_fidelity_grows_with_queries():
    m = as_audited_model(LinearScorer(), toy_contract())
    X = m.encode(toy_frame(2000))
    curve = extraction_curve(m, X[:1000], X[1000:], [50, 2000], random_state=0)
    assert curve[0]["queries"] == 50 and curve[-1]["queries"] == 2000
    assert curve[-1]["fidelity_scores"] > 0.9
    assert curve[-1]["fidelity_scores"] >= curve[0]["fidelity_scores"]
    assert 0.5 <= curve[-1]["baseline"] <= 1.0


def test_surrogate_survives_a_column_missing_on_every_row():
    # scikit-learn's binning fails on an all-missing column; the audit must not end there
    m = as_audited_model(LinearScorer(), toy_contract())
    X = m.encode(toy_frame(600))
    other = next(j for j, name in enumerate(m.feature_names) if name != "x")
    X[:, other] = np.nan
    curve = extraction_curve(m, X[:300], X[300:], [50, 300], random_state=0)
    assert [c["queries"] for c in curve] == [50, 300]
    assert all(0.0 <= c["fidelity_decisions"] <= 1.0 for c in curve)


def test_text_codes_are_read_as_text(tmp_path):
    from tabguard.contract import contract_from_dict
    from tabguard.io import read_table, text_code_dtypes

    c = contract_from_dict(
        {
            "name": "codes",
            "label": {"column": "y", "positive": 1},
            "features": {
                "hexcode": {"type": "category", "categories": ["540445e9", "1e5", "ab12"]},
                "n": {"type": "category", "categories": [1, 2]},
            },
        }
    )
    assert text_code_dtypes(c) == {"hexcode": str}
    path = tmp_path / "codes.csv"
    path.write_text("hexcode,n,y\n540445e9,1,0\n1e5,2,1\nab12,1,0\n")
    df = read_table(path, dtype=text_code_dtypes(c))
    assert df["hexcode"].tolist() == ["540445e9", "1e5", "ab12"]  # not 5.4e14 and 100000.0
    assert df["n"].tolist() == [1, 2, 1]


def test_membership_auc_separates_overfit_from_memoryless(credit):
    from sklearn.ensemble import RandomForestClassifier

    train, ref, contract = credit
    feats = contract.model_features()
    small = train.iloc[:600]
    rf = RandomForestClassifier(50, random_state=0, n_jobs=1).fit(small[feats], small["DEFAULT"])

    class Forest:
        def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
            return rf.predict_proba(df[feats])[:, 1]

    m = as_audited_model(Forest(), contract)
    assert isinstance(m.matrix, RawMatrix)
    y_tr = small["DEFAULT"].to_numpy()
    y_ref = ref["DEFAULT"].to_numpy()
    res = membership_attack(m, m.encode(small), y_tr, m.encode(ref), y_ref, max_rows=600)
    assert res.auc > 0.75 and res.members == res.non_members == 600

    class Blind:
        def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
            return np.full(len(df), 0.22)

    blind = as_audited_model(Blind(), contract)
    res0 = membership_attack(
        blind, blind.encode(small), y_tr, blind.encode(ref), y_ref, max_rows=600
    )
    assert abs(res0.loss_auc - 0.5) < 0.06 and res0.auc < 0.6
