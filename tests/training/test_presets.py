"""Regularisation presets (seed 002's Table 1) and option resolution."""

from __future__ import annotations

import pytest

from tabguard.contract import Contract
from tabguard.training import PRESETS, TrainingConfigError, preset_params
from tabguard.training._presets import bin_features, monotone_vector


@pytest.mark.parametrize("model", sorted(PRESETS))
@pytest.mark.parametrize("preset", ["default", "robust"])
def test_every_preset_resolves(model: str, preset: str) -> None:
    params = preset_params(model, preset)
    assert params == PRESETS[model][preset]
    assert params is not PRESETS[model][preset]  # a copy: callers cannot corrupt the table


def test_robust_lightgbm_regularises_every_table1_knob() -> None:
    d, r = preset_params("lightgbm", "default"), preset_params("lightgbm", "robust")
    assert r["feature_fraction"] < d["feature_fraction"]  # column sampling
    assert r["min_gain_to_split"] > d["min_gain_to_split"]  # gamma
    assert r["learning_rate"] < d["learning_rate"]
    assert r["max_depth"] > 0 and (d["max_depth"] == -1 or r["max_depth"] < d["max_depth"])
    assert r["min_child_samples"] > d["min_child_samples"]
    assert r["min_sum_hessian_in_leaf"] > d["min_sum_hessian_in_leaf"]  # min child weight
    assert r["num_boost_round"] < d["num_boost_round"]  # number of trees
    assert r["lambda_l2"] > d["lambda_l2"]
    assert r["num_leaves"] < d["num_leaves"]


def test_robust_forest_and_logistic_regularise() -> None:
    d, r = preset_params("random_forest", "default"), preset_params("random_forest", "robust")
    assert d["max_depth"] is None and r["max_depth"] is not None
    assert r["min_samples_leaf"] > d["min_samples_leaf"]
    d, r = preset_params("logistic", "default"), preset_params("logistic", "robust")
    assert r["C"] < d["C"]  # stronger penalty
    assert r["l1_ratio"] > d["l1_ratio"]  # L1 part


def test_overrides_and_their_errors() -> None:
    assert preset_params("lightgbm", "robust", {"num_leaves": 4})["num_leaves"] == 4
    with pytest.raises(TrainingConfigError, match="params: must name lightgbm parameters"):
        preset_params("lightgbm", "robust", {"num_leafs": 4})
    with pytest.raises(TrainingConfigError, match="preset: must be one of"):
        preset_params("lightgbm", "paranoid")
    with pytest.raises(TrainingConfigError, match="model: must be one of"):
        preset_params("svm", "default")


def test_bins_resolution(credit_contract: Contract) -> None:
    gameable_with_bins = tuple(
        n for n in credit_contract.gameable_features() if credit_contract.features[n].bins
    )
    assert bin_features(credit_contract, None, "default") == ()
    assert bin_features(credit_contract, None, "robust") == gameable_with_bins
    assert bin_features(credit_contract, "none", "robust") == ()
    assert set(bin_features(credit_contract, "all", "default")) == {
        n for n in credit_contract.model_features() if credit_contract.features[n].bins
    }
    assert bin_features(credit_contract, "AGE, PAY_AMT1,AGE", "default") == ("AGE", "PAY_AMT1")
    with pytest.raises(TrainingConfigError, match="bins: coarse binning needs bin edges"):
        bin_features(credit_contract, "LIMIT_BAL", "default")
    with pytest.raises(TrainingConfigError, match="bins: must name features"):
        bin_features(credit_contract, "AGEE", "default")


def test_monotone_vector_follows_the_contract(credit_contract: Contract) -> None:
    names = ["LIMIT_BAL", "PAY_0", "AGE", "EDUCATION"]
    assert monotone_vector(credit_contract, names) == [-1, 1, 0, 0]
