"""Adapters: black-box raw scorers, transform scorers, decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract, contract_from_dict
from tabguard.model_audit import AuditedModel, RawMatrix, as_audited_model


def toy_contract(positive_means: str = "deny") -> Contract:
    return contract_from_dict(
        {
            "name": "toy",
            "label": {"column": "y", "positive": 1, "negative": 0},
            "decision": {"positive_means": positive_means, "threshold": 0.5},
            "features": {
                "x": {"type": "number", "min": 0, "max": 10, "gameable": True, "neutral": 5},
                "n": {"type": "integer", "min": 0, "max": 100},
                "c": {"type": "category", "categories": ["a", "b", "c"]},
                "flag": {"type": "boolean"},
                "g": {"type": "category", "categories": [1, 2], "protected": True},
            },
        }
    )


class LinearScorer:
    """P(positive) = sigmoid(x - 5 + 2*[c == 'c']) - a transparent black box."""

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        z = df["x"].astype(float) - 5 + 2 * (df["c"] == "c")
        return np.asarray(1 / (1 + np.exp(-z)), dtype=float)


def toy_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": np.round(rng.uniform(0, 10, n), 2),
            "n": rng.integers(0, 100, n),
            "c": rng.choice(["a", "b", "c"], n),
            "flag": rng.random(n) > 0.5,
            "g": rng.choice([1, 2], n),
            "y": rng.integers(0, 2, n),
        }
    )


def test_raw_scorer_round_trip():
    c = toy_contract()
    m = as_audited_model(LinearScorer(), c)
    assert isinstance(m.matrix, RawMatrix)
    df = toy_frame()
    p = LinearScorer().predict_proba(df)
    np.testing.assert_allclose(m.positive_proba(df), p)
    both = m.predict_proba(df)  # scikit-learn's shape, columns m.classes_
    assert both.shape == (len(df), 2) and tuple(m.classes_) == (0, 1)
    np.testing.assert_allclose(both, np.column_stack([1 - p, p]))
    assert m.categories("c") == ["a", "b", "c"] and m.categories("x") is None
    assert m.encode_value("c", "b") == 1.0 and m.decode_value("c", 2.0) == "c"
    assert m.decode_value("n", 7.0) == 7 and isinstance(m.decode_value("n", 7.0), int)
    assert "g" not in m.feature_names  # protected attributes never reach the model


@pytest.mark.parametrize(
    ("means", "approved"), [("deny", [True, False]), ("approve", [False, True])]
)
def test_decision_orientation(means: str, approved: list[bool]):
    m = as_audited_model(LinearScorer(), toy_contract(means))
    assert m.approve(np.array([0.2, 0.8])).tolist() == approved


def test_threshold_override_and_idempotence():
    m = as_audited_model(LinearScorer(), toy_contract(), threshold=0.3)
    assert m.threshold == 0.3
    assert as_audited_model(m) is m
    assert as_audited_model(m, threshold=0.7).threshold == 0.7


def test_bad_objects_are_refused():
    with pytest.raises(TypeError, match="cannot audit"):
        as_audited_model(object(), toy_contract())
    with pytest.raises(ValueError, match="contract"):
        as_audited_model(LinearScorer())


def test_columns_outside_the_contract_are_refused():
    class Bad:
        feature_names = ("x", "zzz")
        native = None

        def encode(self, df): ...
        def predict_matrix(self, X): ...
        def categories(self, f): ...

    with pytest.raises(ValueError, match="zzz"):
        AuditedModel(Bad(), toy_contract())


class TwoColumnScorer(LinearScorer):
    """A black box answering scikit-learn's way: one column per class, in classes_."""

    classes_ = np.array([1, 0])  # the positive class first

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        p = super().predict_proba(df)
        return np.column_stack([p, 1 - p])


def test_raw_scorer_answering_with_one_column_per_class():
    df = toy_frame()
    m = as_audited_model(TwoColumnScorer(), toy_contract())
    np.testing.assert_allclose(m.positive_proba(df), LinearScorer().predict_proba(df))


def test_raw_scorer_with_an_unusable_answer_is_refused():
    class Flat(LinearScorer):
        def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
            return np.zeros((len(df), 1))

    m = as_audited_model(Flat(), toy_contract())
    with pytest.raises(ValueError, match=r"returned shape \(200, 1\)"):
        m.positive_proba(toy_frame())
