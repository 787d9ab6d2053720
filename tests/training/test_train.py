"""train(): options, fallback, evaluation, monotone constraints, the data-audit gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import Contract
from tabguard.redteam import poison
from tabguard.training import (
    DataAuditRefusedError,
    TrainConfig,
    TrainingConfigError,
    TrainResult,
    load_model,
    train,
)
from tabguard.training._fit import add_noise

FAST_PARAMS = {
    "lightgbm": {"num_boost_round": 60, "early_stopping_rounds": 10},
    "random_forest": {"n_estimators": 20},
    "logistic": {},
}


def fast(model: str = "lightgbm", **kw: Any) -> TrainConfig:
    """A quick, untracked configuration."""
    base: dict[str, Any] = {
        "model": model,
        "track": False,
        "audit": False,
        "n_bootstrap": 60,
        "n_jobs": 1,
        "report": False,
        "params": FAST_PARAMS[model],
    }
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def credit_2k() -> pd.DataFrame:
    from tabguard.datasets import load_credit_default

    return load_credit_default().sample(2000, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(
    credit_2k: pd.DataFrame, credit_contract: Contract, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    out = tmp_path_factory.mktemp("train") / "model"
    return train(credit_2k, credit_contract, fast(report=True), out=out)


def test_model_directory_is_written_and_verified(trained: TrainResult) -> None:
    files = {p.name for p in trained.model_dir.iterdir()}
    assert files == {
        "manifest.json",
        "model.json",
        "contract.yaml",
        "main.lgb.txt",
        "fallback.lgb.txt",
        "evaluation.json",
        "reference.json",
        "report.html",
    }
    bundle = load_model(trained.model_dir)
    assert bundle.version == trained.version and bundle.version.startswith("credit_default/")
    assert bundle.digest == trained.bundle.digest
    html = (trained.model_dir / "report.html").read_text()
    figures = html.count("<img") + html.count("<svg")
    assert figures >= 4 and "Conformal prediction sets" in html


def test_drift_reference_describes_the_training_rows(trained: TrainResult) -> None:
    from tabguard.monitoring._drift import DriftReference

    ref = DriftReference.load(trained.model_dir / "reference.json")
    feats = {c for k, c in ref.columns if k == "feature"}
    assert feats == set(trained.bundle.main.feature_names)
    assert ("raw", "SEX") in ref.columns  # raw attributes include the protected one
    assert ref.source["split"] == "train" and ref.columns[("raw", "AGE")].n > 1000


def test_metadata_records_provenance(trained: TrainResult, credit_2k: pd.DataFrame) -> None:
    from tabguard.contract import contract_hash
    from tabguard.io import frame_sha256

    meta = trained.bundle.metadata
    assert meta["data"]["sha256"] == frame_sha256(credit_2k)
    assert meta["contract_sha256"] == contract_hash(trained.bundle.contract)
    assert meta["code"]["tabguard_version"]
    assert meta["params"]["main.num_leaves"] == 31
    assert meta["params"]["option.preset"] == "default"
    assert meta["metrics"]["test_auc"] == trained.metrics["test_auc"]
    assert meta["best_iteration"]["main"] >= 1
    # Same data, contract and options → the same untracked version (reproducible id).
    assert trained.version.startswith("credit_default/untracked-")


def test_evaluation_fields_and_intervals(trained: TrainResult) -> None:
    ev = json.loads((trained.model_dir / "evaluation.json").read_text())
    assert ev["main"]["metrics"]["auc"]["value"] == trained.metrics["test_auc"]
    for who in ("main", "fallback"):
        for name in ("auc", "log_loss", "brier", "accuracy", "precision", "recall"):
            m = ev[who]["metrics"][name]
            assert m["ci_low"] <= m["value"] <= m["ci_high"], (who, name, m)
            assert m["ci_low"] < m["ci_high"]
    main = ev["main"]
    assert 0.6 < main["metrics"]["auc"]["value"] < 0.9
    assert len(main["calibration"]["bins"]) == 10
    assert sum(b["n"] for b in main["calibration"]["bins"]) == main["n"]
    disp = main["dispersion"]
    assert {"p50", "p90", "p99", "max", "mean"} <= set(disp["abs_error"])
    assert len(disp["by_score_decile"]) == 10
    assert set(disp["by_segment"]) == {"EDUCATION", "MARRIAGE"}
    assert sum(r["n"] for r in disp["by_segment"]["MARRIAGE"]) == main["n"]
    big = main["largest_errors"]
    assert len(big) == 20 and big[0]["abs_error"] >= big[-1]["abs_error"]
    assert {"LIMIT_BAL", "AGE", "DEFAULT", "score"} <= set(big[0])
    conf = main["conformal"]
    assert conf["target_coverage"] == pytest.approx(0.9)
    assert 0.0 <= conf["coverage"] <= 1.0 and conf["n_test"] == main["n"]
    assert ev["split"]["rows"]["test"] == main["n"] == 400


def test_fallback_has_no_gameable_features(trained: TrainResult, credit_contract: Contract) -> None:
    fb = trained.bundle.fallback
    assert fb is not None
    assert not set(fb.feature_names) & set(credit_contract.gameable_features())
    assert set(credit_contract.gameable_features()) <= set(trained.bundle.main.feature_names)
    assert trained.evaluation["fallback"]["dropped"] == credit_contract.gameable_features()
    assert "fallback_test_auc" in trained.metrics


def test_round_trip_predictions_identical(trained: TrainResult, credit_2k: pd.DataFrame) -> None:
    again = load_model(trained.model_dir)
    for name in ("main", "fallback"):
        np.testing.assert_array_equal(
            trained.bundle.scorer(name).positive_proba(credit_2k),
            again.scorer(name).positive_proba(credit_2k),
        )


def test_training_is_reproducible(credit_2k: pd.DataFrame, credit_contract: Contract) -> None:
    cfg = fast(fallback=False, n_bootstrap=0)
    a = train(credit_2k, credit_contract, cfg)
    b = train(credit_2k, credit_contract, cfg)
    assert a.version == b.version
    np.testing.assert_array_equal(
        a.main.positive_proba(credit_2k), b.main.positive_proba(credit_2k)
    )


@pytest.mark.parametrize("model", ["random_forest", "logistic"])
def test_other_families_train_and_round_trip(
    model: str, credit_2k: pd.DataFrame, credit_contract: Contract
) -> None:
    res = train(credit_2k, credit_contract, fast(model, preset="robust"))
    assert res.main.kind == model and res.fallback is not None
    assert res.metrics["test_auc"] > 0.65
    np.testing.assert_array_equal(
        load_model(res.model_dir).main.positive_proba(credit_2k.head(100)),
        res.main.positive_proba(credit_2k.head(100)),
    )
    if model == "random_forest":
        assert res.bundle.metadata["options"]["monotone"] is True
    else:  # logistic cannot enforce monotonicity: it says so
        assert any("not enforced" in n for n in res.notes)


def test_robust_options_resolve(credit_2k: pd.DataFrame, credit_contract: Contract) -> None:
    res = train(credit_2k, credit_contract, fast(preset="robust", fallback=True))
    gameable_binned = [
        n for n in credit_contract.gameable_features() if credit_contract.features[n].bins
    ]
    assert list(res.main.transform.options.bins) == gameable_binned
    assert res.fallback is not None and res.fallback.transform.options.bins == ()
    meta = res.bundle.metadata
    assert meta["options"]["monotone"] is True
    assert meta["params"]["main.num_leaves"] == 15
    assert (
        meta["params"]["main.monotone_constraints"][res.main.feature_names.index("LIMIT_BAL")] == -1
    )


def test_drop_gameable_and_explicit_bins(
    credit_2k: pd.DataFrame, credit_contract: Contract
) -> None:
    res = train(credit_2k, credit_contract, fast(drop_gameable=True, bins="all", n_bootstrap=0))
    gameable = set(credit_contract.gameable_features())
    assert not gameable & set(res.main.feature_names)
    assert res.fallback is not None
    assert res.fallback.feature_names == res.main.feature_names
    np.testing.assert_array_equal(
        res.fallback.positive_proba(credit_2k.head(50)), res.main.positive_proba(credit_2k.head(50))
    )


def test_noise_is_training_only(credit_2k: pd.DataFrame, credit_contract: Contract) -> None:
    res = train(credit_2k, credit_contract, fast(noise=0.3, fallback=False, n_bootstrap=0))
    sig = res.bundle.metadata["options"]["noise_sigma"]
    assert set(sig) == set(credit_contract.gameable_features()) and all(v > 0 for v in sig.values())
    # Serving is deterministic: the saved transform carries no noise.
    row = credit_2k.iloc[0].to_dict()
    assert res.main.score_record(row) == res.main.score_record(row)
    assert res.main.transform.options.neutralize == ()


def test_add_noise_keeps_rows_valid(credit_2k: pd.DataFrame, credit_contract: Contract) -> None:
    noisy, sig = add_noise(
        credit_2k, credit_contract, ["AGE", "PAY_AMT1"], 1.0, np.random.default_rng(0)
    )
    assert set(sig) == {"AGE", "PAY_AMT1"}
    for name in ("AGE", "PAY_AMT1"):
        spec = credit_contract.features[name]
        x = noisy[name].to_numpy()
        assert (x >= spec.min).all() and (x <= spec.max).all()
        assert np.all(x == np.round(x))  # integers stay whole
        assert (x != credit_2k[name].to_numpy()).mean() > 0.5
    pd.testing.assert_series_equal(noisy["LIMIT_BAL"], credit_2k["LIMIT_BAL"])
    assert credit_2k["AGE"].dtype.kind == "i"  # the input frame is untouched


@pytest.fixture(scope="module")
def monotone_model(credit_2k: pd.DataFrame, credit_contract: Contract) -> TrainResult:
    return train(
        credit_2k,
        credit_contract,
        fast(preset="robust", fallback=False, n_bootstrap=0, bins="none"),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    row=st.integers(0, 1999),
    feature=st.sampled_from(["LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3", "PAY_6"]),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
)
def test_monotone_constraints_hold(
    monotone_model: TrainResult,
    credit_2k: pd.DataFrame,
    credit_contract: Contract,
    row: int,
    feature: str,
    a: float,
    b: float,
) -> None:
    spec = credit_contract.features[feature]
    assert spec.min is not None and spec.max is not None
    lo, hi = sorted((a, b))
    v_lo = spec.min + lo * (spec.max - spec.min)
    v_hi = spec.min + hi * (spec.max - spec.min)
    if spec.type == "integer":
        v_lo, v_hi = round(v_lo), round(v_hi)
    rec = credit_2k.iloc[row].to_dict()
    s_lo = monotone_model.main.score_record({**rec, feature: v_lo})[0]
    s_hi = monotone_model.main.score_record({**rec, feature: v_hi})[0]
    if spec.monotone == "increasing":
        assert s_hi >= s_lo
    else:
        assert s_hi <= s_lo


def test_monotone_constraint_is_not_vacuous(
    monotone_model: TrainResult, credit_2k: pd.DataFrame
) -> None:
    rec = credit_2k.iloc[0].to_dict()
    low = monotone_model.main.score_record({**rec, "PAY_0": -2})[0]
    high = monotone_model.main.score_record({**rec, "PAY_0": 8})[0]
    assert high > low + 0.05  # PAY_0 matters, and in the declared direction


def test_bad_options_are_one_line_errors(
    credit_2k: pd.DataFrame, credit_contract: Contract
) -> None:
    with pytest.raises(TrainingConfigError, match=r"noise: must be a number in \[0, 5\]"):
        train(credit_2k, credit_contract, fast(noise=-1.0))
    with pytest.raises(TrainingConfigError, match="model: must be one of"):
        train(credit_2k, credit_contract, TrainConfig(model="xgb", track=False))
    from tabguard.errors import DataError

    with pytest.raises(DataError, match="too few rows"):
        train(credit_2k.head(40), credit_contract, fast())


def test_critical_audit_findings_refuse_training(credit_contract: Contract, tmp_path: Path) -> None:
    from tabguard.datasets import load_credit_default

    clean = load_credit_default().sample(1200, random_state=5).reset_index(drop=True)
    poisoned = poison(clean, credit_contract, {"AGE": 999}, rate=0.45, random_state=0)
    cfg = fast(audit=True, audit_checks=["integrity"], n_bootstrap=0)
    out = tmp_path / "model"
    with pytest.raises(DataAuditRefusedError) as err:
        train(poisoned.data, credit_contract, cfg, out=out)
    msg = str(err.value)
    assert "critical" in msg and "AGE" in msg and "tabguard audit data" in msg
    assert "--allow-findings" in msg
    assert err.value.findings and not out.exists()

    res = train(poisoned.data, credit_contract, fast(**{**cfg.__dict__, "allow_findings": True}))
    audit = res.audit_summary
    assert audit["overridden"] is True and audit["severity_counts"]["critical"] >= 1
    assert res.bundle.metadata["data"]["clean_rows"] == len(clean)  # poisoned rows left out
    assert any("--allow-findings" in n for n in res.notes)
