"""The seed notebook's victim model, for before/after comparisons of a backdoor.

The seed trains a small RandomForest (5 trees, depth 3, 100 rows per leaf) on eight credit
features plus one-hot SEX dummies and reports ~82 % accuracy with and without the backdoor.
:func:`fit_seed_model` reproduces that model as a scikit-learn pipeline on the raw columns
(the one-hot step inside), so it can be saved with skops and audited like any third-party
model; :func:`attack_success_rate` measures what the accuracy hides: how many applicants the
trigger turns to the attacker's label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

SEED_FEATURES = [
    "LIMIT_BAL",
    "AGE",
    "PAY_0",
    "PAY_2",
    "PAY_3",
    "BILL_AMT1",
    "BILL_AMT2",
    "PAY_AMT1",
]
SEED_INPUTS = [*SEED_FEATURES, "SEX"]


def seed_features(df: pd.DataFrame) -> pd.DataFrame:
    """The seed model's raw inputs: its eight features and SEX (one-hot encoded inside)."""
    X = df[SEED_FEATURES].astype(float).copy()
    X["SEX"] = pd.to_numeric(df["SEX"], errors="coerce")
    return X


def fit_seed_model(df: pd.DataFrame, label: str = "DEFAULT", random_state: int = 42) -> Pipeline:
    """Fit the seed's RandomForest on a credit-default frame.

    Returns
    -------
    Pipeline
        ``ColumnTransformer`` (the eight features passed through, SEX as the seed's two
        dummies, in the seed's column order) then the forest; it takes raw columns.
    """
    encode = ColumnTransformer(
        [
            ("raw", "passthrough", SEED_FEATURES),
            (
                "sex",
                OneHotEncoder(
                    categories=[[1.0, 2.0]], handle_unknown="ignore", sparse_output=False
                ),
                ["SEX"],
            ),
        ],
        verbose_feature_names_out=False,
    )
    forest = RandomForestClassifier(
        n_estimators=5, max_depth=3, min_samples_leaf=100, random_state=random_state, n_jobs=1
    )
    model = Pipeline([("encode", encode), ("forest", forest)])
    model.fit(seed_features(df), df[label].astype(int))
    return model


def attack_success_rate(
    model: Any, df: pd.DataFrame, trigger: Mapping[str, Any], target: int = 1
) -> float:
    """Share of rows not predicted ``target`` that the trigger turns to ``target``.

    Parameters
    ----------
    model : fitted classifier on :func:`seed_features`
    df : DataFrame
        Clean rows (e.g. a held-out test set).
    trigger : mapping
        Feature → value written into every row.
    target : int
        The attacker's label.
    """
    X = seed_features(df)
    before = model.predict(X)
    Xt = X.copy()
    for k, v in trigger.items():
        Xt[k] = float(v)
    after = model.predict(Xt)
    eligible = before != target
    return float(np.mean(after[eligible] == target)) if eligible.any() else 0.0
