"""A model an attack can move: LightGBM with enough capacity to lean on gameable features.

The small models of the serving tests barely use PAY_AMT* (gaming one moves few decisions), so
an attack on them changes nothing worth alerting on. This one (300 rounds, 63 leaves) uses them
as an unregularised production model would: an applicant's own best PAY_AMT2 value turns about
half of the denials of risky applicants into approvals.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb

from tabguard.contract import FeatureTransform, TransformOptions
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.io import check_labels
from tabguard.training import ModelBundle, Scorer, load_model, save_model


def _fit(name: str, options: TransformOptions, rows: int, rounds: int) -> Scorer:
    c = credit_default_contract()
    df = load_credit_default().sample(rows, random_state=0)
    tr = FeatureTransform(c, options)
    ds = lgb.Dataset(
        tr.transform_frame(df),
        check_labels(df, c).to_numpy(),
        feature_name=tr.feature_names,
        categorical_feature=tr.categorical_features,
    )
    params = {
        "objective": "binary",
        "num_leaves": 63,
        "learning_rate": 0.05,
        "verbose": -1,
        "num_threads": 1,
        "seed": 0,
    }
    return Scorer(name, "lightgbm", lgb.train(params, ds, rounds), tr)


def vulnerable_model(out: Path, rows: int = 20000, rounds: int = 300) -> ModelBundle:
    """Train (once per directory) and load the vulnerable model with its fallback."""
    if not (out / "manifest.json").exists():
        c = credit_default_contract()
        main = _fit("main", TransformOptions(), rows, rounds)
        fallback = _fit("fallback", TransformOptions(drop=tuple(c.gameable_features())), rows, 100)
        save_model(out, main=main, fallback=fallback, contract=c, version="vulnerable/1")
    return load_model(out)
