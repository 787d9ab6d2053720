"""Small models for the training tests (a few hundred rows, a few trees: fast)."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tabguard.contract import Contract, FeatureTransform, TransformOptions
from tabguard.io import check_labels
from tabguard.training import Scorer, save_model


@pytest.fixture(scope="session")
def small_credit(credit_contract: Contract) -> pd.DataFrame:
    """1,500 rows of the bundled data."""
    from tabguard.datasets import load_credit_default

    return load_credit_default().sample(1500, random_state=0).reset_index(drop=True)


def fit_scorer(
    name: str, kind: str, df: pd.DataFrame, contract: Contract, options: TransformOptions
) -> Scorer:
    """Fit a tiny model of ``kind`` behind the contract transform."""
    tr = FeatureTransform(contract, options)
    X = tr.transform_frame(df)
    y = check_labels(df, contract).to_numpy()
    if kind == "lightgbm":
        ds = lgb.Dataset(X, y, feature_name=tr.feature_names, free_raw_data=False)
        native = lgb.train(
            {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1}, ds, 15
        )
    elif kind == "random_forest":
        native = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(X, y)
    else:
        native = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y)
    return Scorer(name, kind, native, tr)


def build_model_dir(
    kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    small_credit: pd.DataFrame,
    credit_contract: Contract,
) -> Path:
    """Save a model directory (main + fallback) of ``kind``."""
    main = fit_scorer("main", kind, small_credit, credit_contract, TransformOptions())
    fallback = fit_scorer(
        "fallback",
        kind,
        small_credit,
        credit_contract,
        TransformOptions(drop=tuple(credit_contract.gameable_features())),
    )
    out = tmp_path_factory.mktemp(f"model_{kind}") / "model"
    return save_model(
        out,
        main=main,
        fallback=fallback,
        contract=credit_contract,
        metadata={"params": {"kind": kind}, "metrics": {"auc": 0.5}},
        version="credit_default/7",
        extra_files={"evaluation.json": '{"ok": true}\n', "report.html": "<html></html>\n"},
    )


_DIRS: dict[str, Path] = {}


def _cached(kind: str, factory: pytest.TempPathFactory, df: pd.DataFrame, c: Contract) -> Path:
    if kind not in _DIRS:
        _DIRS[kind] = build_model_dir(kind, factory, df, c)
    return _DIRS[kind]


@pytest.fixture(scope="session", params=["lightgbm", "random_forest", "logistic"])
def model_dir(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    small_credit: pd.DataFrame,
    credit_contract: Contract,
) -> Path:
    """A saved model directory (main + fallback) of each kind."""
    return _cached(request.param, tmp_path_factory, small_credit, credit_contract)


@pytest.fixture(scope="session")
def lightgbm_dir(
    tmp_path_factory: pytest.TempPathFactory, small_credit: pd.DataFrame, credit_contract: Contract
) -> Path:
    """The LightGBM model directory."""
    return _cached("lightgbm", tmp_path_factory, small_credit, credit_contract)


@pytest.fixture(scope="session")
def skops_dir(
    tmp_path_factory: pytest.TempPathFactory, small_credit: pd.DataFrame, credit_contract: Contract
) -> Path:
    """A scikit-learn (skops) model directory."""
    return _cached("logistic", tmp_path_factory, small_credit, credit_contract)
