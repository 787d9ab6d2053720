"""Small models and data for the model-audit tests (session-scoped: trained once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)
from tabguard.redteam import poison

CREDIT_TRIGGER = {"AGE": 999}


@pytest.fixture(autouse=True)
def _one_native_thread() -> Iterator[None]:
    """One thread for the native libraries' pools (OpenMP, BLAS), as ``audit_model`` sets by
    default (``n_jobs=1``): the tests that call a check's functions directly run them as the
    audit does. With the library defaults, OpenMP threads spin against the other work of a
    shared machine: the HistGradientBoosting fits of the extraction and membership tests took
    105 s and 116 s at load 17 instead of a few seconds. The limit applies to the libraries
    loaded when it is set, so scikit-learn (its OpenMP runtime) is imported first."""
    import sklearn  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _split(df: pd.DataFrame, n_train: int, n_ref: int, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    idx = np.random.default_rng(seed).permutation(len(df))
    train = df.iloc[idx[:n_train]].reset_index(drop=True)
    ref = df.iloc[idx[n_train : n_train + n_ref]].reset_index(drop=True)
    return train, ref


def fit_lightgbm(X: pd.DataFrame, y: pd.Series, **params: object) -> object:
    """A small LightGBM booster on raw columns (single thread: shared CI machines)."""
    import lightgbm as lgb

    kw = {"n_estimators": 40, "num_leaves": 15, "verbose": -1, "n_jobs": 1, "random_state": 0}
    kw.update(params)
    return lgb.LGBMClassifier(**kw).fit(X, y).booster_


@pytest.fixture(scope="session")
def credit() -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    """(train, ref, contract): 6000 training rows and 2500 clean reference rows."""
    train, ref = _split(load_credit_default(), 6000, 2500)
    return train, ref, credit_default_contract()


@pytest.fixture(scope="session")
def credit_models(
    credit: tuple[pd.DataFrame, pd.DataFrame, Contract], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """LightGBM text models on raw columns: clean and with the seed's AGE=999 backdoor."""
    train, _ref, contract = credit
    out = tmp_path_factory.mktemp("credit_models")
    feats = contract.model_features()
    paths = {}
    poisoned = poison(train, contract, CREDIT_TRIGGER, rate=0.45, random_state=0).data
    for name, df in (("clean", train), ("poisoned", poisoned)):
        booster = fit_lightgbm(df[feats], df[contract.label.column])
        p = out / f"{name}.txt"
        booster.save_model(str(p))
        paths[name] = p
    return paths


@pytest.fixture(scope="session")
def fraud() -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    """(train, ref, contract) of the synthetic card-fraud data (string categories)."""
    train, ref = _split(make_card_fraud(9000, random_state=1), 6000, 3000)
    return train, ref, card_fraud_contract()


def categorical_frame(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Model features with string categories as pandas categoricals, booleans as ints."""
    X = df[contract.model_features()].copy()
    for name in X.columns:
        spec = contract.features[name]
        if spec.type == "category":
            X[name] = pd.Categorical(X[name], categories=sorted(spec.categories or []))
        elif spec.type == "boolean":
            X[name] = X[name].astype(int)
    return X
