"""Conformal prediction sets: the measured coverage is near 1 - alpha on the bundled data."""

from __future__ import annotations

import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.training import TrainConfig, train


@pytest.mark.parametrize(
    ("model", "alpha", "params"),
    [
        ("lightgbm", 0.1, {"num_boost_round": 80, "early_stopping_rounds": 10}),
        ("lightgbm", 0.2, {"num_boost_round": 40, "early_stopping_rounds": 10}),
    ],
)
def test_measured_coverage_is_near_target(
    credit_df: pd.DataFrame, credit_contract: Contract, model: str, alpha: float, params: dict
) -> None:
    cfg = TrainConfig(
        model=model,
        alpha=alpha,
        params=params,
        track=False,
        audit=False,
        fallback=False,
        n_bootstrap=0,
        report=False,
        n_jobs=1,
    )
    res = train(credit_df, credit_contract, cfg)
    conf = res.evaluation["main"]["conformal"]
    # Calibrated on 3,000 rows, measured on 6,000 others: split conformal guarantees
    # coverage >= 1 - alpha in expectation; the measurement is within sampling error.
    assert conf["n_calibration"] == 3000 and conf["n_test"] == 6000
    assert abs(conf["coverage"] - (1 - alpha)) < 0.025, conf
    assert conf["coverage_ci"][0] <= conf["coverage"] <= conf["coverage_ci"][1]
    # Sets hold 0 labels (LAC can return empty sets at larger alpha), 1 or 2.
    assert conf["share_empty"] + conf["share_singleton"] + conf["share_both_labels"] == (
        pytest.approx(1.0)
    )
    assert 0.5 <= conf["mean_set_size"] <= 2.0
    q = conf["quantile"]
    assert q is not None and 0 < q < 1
    assert res.bundle.metadata["conformal"]["quantile"] == q
