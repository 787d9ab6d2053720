"""A model an attack can move: LightGBM fitted with none of tabguard's robustness options.

The robust preset of ``tabguard train`` (coarse bins, clipping, neutral values, regularised
trees) leaves gaming one feature little to gain, so an attack on such a model changes few
decisions and there is little for the monitor to see. This model uses the gameable PAY_AMT*
features as an unregularised production model would (300 rounds, 63 leaves): an applicant's
own best PAY_AMT2 value turns about half of the denials of risky applicants into approvals.
The traffic simulator's proof of the alerts (``tabguard demo``, tests/monitoring, the
benchmarks) serves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tabguard.contract import TransformOptions
    from tabguard.training import ModelBundle, Scorer


def _fit(name: str, options: TransformOptions, rows: int, rounds: int) -> Scorer:
    import lightgbm as lgb

    from tabguard.contract import FeatureTransform
    from tabguard.datasets import credit_default_contract, load_credit_default
    from tabguard.io import check_labels
    from tabguard.training import Scorer

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


def vulnerable_model(out: str | Path, rows: int = 20000, rounds: int = 300) -> ModelBundle:
    """Train (once per directory) and load the vulnerable credit model with its fallback.

    Parameters
    ----------
    out : path
        Model directory; an existing model there is loaded, not retrained.
    rows : int
        Rows of the bundled credit data it is fitted on (seeded sample).
    rounds : int
        Boosting rounds of the main model (the fallback, without gameable features, has 100).

    Returns
    -------
    ModelBundle
    """
    from tabguard.contract import TransformOptions
    from tabguard.datasets import credit_default_contract
    from tabguard.training import load_model, save_model

    out = Path(out)
    if not (out / "manifest.json").exists():
        c = credit_default_contract()
        main = _fit("main", TransformOptions(), rows, rounds)
        fallback = _fit("fallback", TransformOptions(drop=tuple(c.gameable_features())), rows, 100)
        save_model(out, main=main, fallback=fallback, contract=c, version="vulnerable/1")
    return load_model(out)
