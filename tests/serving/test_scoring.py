"""The fast scoring path equals the Scorer, and falls back to it when it cannot."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from tabguard.contract import FeatureTransform, RecordValidator, TransformOptions
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    make_card_fraud,
)
from tabguard.serving import compile_scorer, random_records
from tabguard.serving._scoring import FastScorer, LightGBMFast, check_matrix
from tabguard.training import Scorer, load_model
from tests.serving.conftest import fit_scorer, model_dir_of

KINDS = ["lightgbm", "random_forest", "logistic"]


@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_equals_predict_proba(
    kind: str, tmp_path_factory: pytest.TempPathFactory, train_df: pd.DataFrame
) -> None:
    bundle = load_model(model_dir_of(kind, tmp_path_factory, train_df, TransformOptions()))
    for scorer in (bundle.main, bundle.fallback):
        assert scorer is not None
        fast = compile_scorer(scorer)
        assert fast.reason is None, fast.reason
        assert fast.path != "scorer"
        assert fast.max_abs_diff is not None and fast.max_abs_diff <= 1e-9
        X = scorer.transform.transform_frame(train_df)
        np.testing.assert_allclose(
            fast.score_rows(X), scorer.positive_proba_matrix(X), rtol=0, atol=1e-12
        )


def test_coarse_bins_and_categories(
    tmp_path_factory: pytest.TempPathFactory, train_df: pd.DataFrame
) -> None:
    options = TransformOptions(bins=tuple(credit_default_contract().gameable_features()))
    bundle = load_model(model_dir_of("lightgbm", tmp_path_factory, train_df, options))
    fast = compile_scorer(bundle.main)
    assert fast.path == "numba-lightgbm" and fast.max_abs_diff == 0.0


def test_check_sample_covers_every_threshold(
    tmp_path_factory: pytest.TempPathFactory, train_df: pd.DataFrame
) -> None:
    bundle = load_model(model_dir_of("lightgbm", tmp_path_factory, train_df, TransformOptions()))
    fast = LightGBMFast(bundle.main)
    n_thresholds = sum(len(v) for v in fast.thresholds.values())
    X = check_matrix(bundle.main, fast.thresholds, n=10)
    assert len(X) == 11 + 3 * n_thresholds
    # each threshold appears exactly, and one float step either side
    j, ths = next(iter(fast.thresholds.items()))
    assert np.isin(ths, X[:, j]).all()
    assert np.isin(np.nextafter(ths, np.inf), X[:, j]).all()


def test_missing_values_follow_each_library(tmp_path: Path) -> None:
    """Nullable features without a neutral value reach the model as NaN."""
    contract = credit_default_contract().with_updates(
        BILL_AMT1={"nullable": True}, LIMIT_BAL={"nullable": True}
    )
    from tabguard.datasets import load_credit_default

    df = load_credit_default().sample(1500, random_state=3).reset_index(drop=True)
    rng = np.random.default_rng(0)
    df["BILL_AMT1"] = df["BILL_AMT1"].astype(float).mask(rng.random(len(df)) < 0.3)
    df["LIMIT_BAL"] = df["LIMIT_BAL"].astype(float).mask(rng.random(len(df)) < 0.2)
    for kind in ("lightgbm", "random_forest", "logistic"):
        scorer = fit_scorer("main", kind, df, contract, TransformOptions())
        fast = compile_scorer(scorer)
        assert fast.reason is None, (kind, fast.reason)
        X = scorer.transform.transform_frame(df)
        assert np.isnan(X).any()
        np.testing.assert_allclose(
            fast.score_rows(X), scorer.positive_proba_matrix(X), rtol=0, atol=1e-12
        )


def test_second_domain_string_categories_and_booleans() -> None:
    contract = card_fraud_contract()
    df = make_card_fraud(3000, random_state=1)
    for kind in KINDS:
        scorer = fit_scorer("main", kind, df, contract, TransformOptions())
        fast = compile_scorer(scorer)
        assert fast.reason is None, (kind, fast.reason)
        assert fast.max_abs_diff is not None and fast.max_abs_diff <= 1e-9


def test_a_mismatch_falls_back_to_the_scorer(
    tmp_path_factory: pytest.TempPathFactory,
    train_df: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bundle = load_model(model_dir_of("lightgbm", tmp_path_factory, train_df, TransformOptions()))
    real = LightGBMFast.score_row
    monkeypatch.setattr(LightGBMFast, "score_row", lambda self, row: real(self, row) + 1e-7)
    fast = compile_scorer(bundle.main)
    assert type(fast) is FastScorer and fast.path == "scorer"
    assert fast.reason is not None and "differs from predict_proba by 1e-07" in fast.reason
    assert "slow path" in caplog.text
    row = bundle.main.transform.transform_frame(train_df.head(1))[0]
    assert fast.score_row(row) == bundle.main.positive_proba_matrix(row[None])[0]


def test_an_unsupported_model_uses_the_scorer(train_df: pd.DataFrame) -> None:
    contract = credit_default_contract()
    tr = FeatureTransform(contract)
    X = tr.transform_frame(train_df)
    y = train_df["DEFAULT"].to_numpy()
    booster = lgb.train(
        {"objective": "cross_entropy", "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y.astype(float)),
        5,
    )
    fast = compile_scorer(Scorer("main", "lightgbm", booster, tr))
    assert fast.path == "scorer" and "objective" in (fast.reason or "")
    np.testing.assert_array_equal(
        fast.score_rows(X[:5]), Scorer("main", "lightgbm", booster, tr).positive_proba_matrix(X[:5])
    )


def test_random_records_are_valid_for_both_domains() -> None:
    for contract in (credit_default_contract(), card_fraud_contract()):
        records = random_records(contract, 100, seed=4)
        assert len(records) == 100
        validator = RecordValidator(contract)
        assert all(not validator.errors(r) for r in records)
