"""Loading third-party models trained on raw columns, and refusing bad or unsafe files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from tabguard.errors import ArtifactIntegrityError, ContractError
from tabguard.model_audit import load_audit_model, load_third_party, sniff_model_file
from tests.model_audit.conftest import categorical_frame, fit_lightgbm


def test_lightgbm_text_with_string_categories(tmp_path: Path, fraud):
    train, ref, contract = fraud
    X = categorical_frame(train, contract)
    booster = fit_lightgbm(X, train["is_fraud"], n_estimators=15)
    path = tmp_path / "m.txt"
    booster.save_model(str(path))
    m = load_third_party(path, contract)
    assert m.categories("channel") == sorted(contract.features["channel"].categories)
    expected = booster.predict(categorical_frame(ref, contract))
    np.testing.assert_allclose(m.positive_proba(ref), expected, rtol=1e-9)
    assert m.trees is not None and m.trees.source == "lightgbm"


def test_xgboost_json_with_stored_categories(tmp_path: Path, fraud):
    xgb = pytest.importorskip("xgboost")
    train, ref, contract = fraud
    X = categorical_frame(train, contract)
    clf = xgb.XGBClassifier(n_estimators=15, max_depth=3, enable_categorical=True, n_jobs=1)
    clf.fit(X, train["is_fraud"])
    path = tmp_path / "m.json"
    clf.get_booster().save_model(str(path))
    assert sniff_model_file(path) == "xgboost"
    m = load_third_party(path, contract)
    np.testing.assert_allclose(
        m.positive_proba(ref), clf.predict_proba(categorical_frame(ref, contract))[:, 1], rtol=1e-6
    )


def test_skops_pipeline_with_strings_and_tree_view(tmp_path: Path, fraud):
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    train, ref, contract = fraud
    feats = contract.model_features()
    cats = [f for f in feats if contract.features[f].type == "category"]
    pre = make_column_transformer((OrdinalEncoder(), cats), remainder="passthrough")
    pipe = make_pipeline(pre, RandomForestClassifier(10, max_depth=5, random_state=0))
    pipe.fit(train[feats], train["is_fraud"])
    path = tmp_path / "m.skops"
    sio.dump(pipe, path)
    m = load_third_party(path, contract)
    np.testing.assert_allclose(m.positive_proba(ref), pipe.predict_proba(ref[feats])[:, 1])
    # scikit-learn's convention: one column per class
    np.testing.assert_allclose(m.predict_proba(ref), pipe.predict_proba(ref[feats]))
    ens = m.trees
    assert ens is not None  # passthrough columns map to the matrix
    assert ens.thresholds(m.column("amount")).size > 0
    assert ens.thresholds(m.column("channel")).size == 0  # encoded column: splits ignored


def test_tabguard_model_directory_needs_no_contract(tmp_path: Path, credit):
    from tabguard.training import TrainConfig, train

    train_df, _, contract = credit
    res = train(
        train_df.iloc[:3000],
        contract,
        TrainConfig(
            track=False, audit=False, n_bootstrap=0, report=False, params={"num_boost_round": 20}
        ),
        out=tmp_path / "model",
    )
    m = load_audit_model(tmp_path / "model")
    assert m.contract.name == contract.name and m.threshold == res.bundle.threshold
    fb = load_audit_model(tmp_path / "model", scorer="fallback")
    assert set(fb.feature_names).isdisjoint(contract.gameable_features())


def test_missing_contract_for_a_model_file(credit_models):
    with pytest.raises(ContractError, match="--contract"):
        load_audit_model(credit_models["clean"])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "unrecognised"),
        (b"hello, world\n1,2\n", "unrecognised"),
        (pickle.dumps({"a": 1}), "pickle"),
        (b"tree\nversion=v4\nnot a model at all", "not a valid LightGBM"),
        (b'{"learner": {"objective": {"name": "multi:softprob"}}}', "XGBoost"),
        (b"PK\x03\x04garbage", "skops"),
    ],
)
def test_bad_model_files_are_refused(tmp_path: Path, credit, content: bytes, match: str):
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(ArtifactIntegrityError, match=match):
        load_third_party(path, credit[2])


def test_missing_file_and_plain_directory(tmp_path: Path, credit):
    with pytest.raises(ArtifactIntegrityError, match="not found"):
        load_third_party(tmp_path / "nope.txt", credit[2])
    with pytest.raises(ArtifactIntegrityError, match=r"manifest\.json"):
        load_audit_model(tmp_path, contract=credit[2])


def test_skops_with_untrusted_type_is_refused_before_loading(tmp_path: Path, credit, monkeypatch):
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "m.skops"
    sio.dump(FunctionTransformer(func=os.system), path)

    def never(*a: object, **k: object) -> None:
        raise AssertionError("skops.io.load must not run on an untrusted file")

    monkeypatch.setattr(sio, "load", never)
    with pytest.raises(ArtifactIntegrityError, match=r"trusted list: \['posix.system'\]"):
        load_third_party(path, credit[2])


def test_skops_non_classifier_is_refused(tmp_path: Path, credit):
    import skops.io as sio
    from sklearn.preprocessing import StandardScaler

    sio.dump(StandardScaler().fit(np.eye(3)), tmp_path / "s.skops")
    with pytest.raises(ArtifactIntegrityError, match="not a fitted classifier"):
        load_third_party(tmp_path / "s.skops", credit[2])


def test_lightgbm_regression_objective_is_refused(tmp_path: Path, credit):
    import lightgbm as lgb

    train, _, contract = credit
    feats = contract.model_features()
    reg = lgb.LGBMRegressor(n_estimators=3, verbose=-1, n_jobs=1).fit(
        train[feats], train["LIMIT_BAL"] / 1e6
    )
    path = tmp_path / "reg.txt"
    reg.booster_.save_model(str(path))
    with pytest.raises(ArtifactIntegrityError, match="not a binary classifier"):
        load_third_party(path, contract)


def test_inputs_must_be_contract_features(tmp_path: Path, credit):
    train, _, contract = credit
    X = train[["LIMIT_BAL", "AGE"]].rename(columns={"AGE": "age_years"})
    fit_lightgbm(X, train["DEFAULT"], n_estimators=3).save_model(str(tmp_path / "m.txt"))
    with pytest.raises(ContractError, match="age_years"):
        load_third_party(tmp_path / "m.txt", contract)


def test_string_categories_without_stored_list_are_refused(tmp_path: Path, fraud):
    train, _, contract = fraud
    X = train[["amount", "channel"]].copy()
    X["channel"] = X["channel"].map({c: i for i, c in enumerate(sorted(set(X["channel"])))})
    fit_lightgbm(X, train["is_fraud"], n_estimators=3).save_model(str(tmp_path / "m.txt"))
    with pytest.raises(ContractError, match="category list"):
        load_third_party(tmp_path / "m.txt", contract)


def test_skops_classes_must_hold_the_positive_label(tmp_path: Path, credit):
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    train, _, contract = credit
    y = np.where(train["DEFAULT"] == 1, "bad", "good")
    tree = DecisionTreeClassifier(max_depth=2).fit(train[["AGE"]], y)
    sio.dump(tree, tmp_path / "t.skops")
    with pytest.raises(ContractError, match=r"label\.positive"):
        load_third_party(tmp_path / "t.skops", contract)


def test_sniff_accepts_json_with_leading_whitespace(tmp_path: Path):
    p = tmp_path / "m.json"
    p.write_text("  " + json.dumps({"learner": {}}))
    assert sniff_model_file(p) == "xgboost"


def test_a_plain_sklearn_pipeline_is_adapted_like_a_skops_file(fraud):
    """Dispatch on what the object can do: a fitted pipeline (predict_proba, classes_,
    feature_names_in_) gets the scikit-learn adapter, its trees read through the pipeline."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from tabguard.model_audit import as_audited_model, audit_model
    from tabguard.model_audit._thirdparty import ThirdPartyModel

    train, ref, contract = fraud
    feats = contract.model_features()
    cats = [f for f in feats if contract.features[f].type == "category"]
    pre = make_column_transformer((OrdinalEncoder(), cats), remainder="passthrough")
    pipe = make_pipeline(pre, RandomForestClassifier(10, max_depth=5, random_state=0))
    pipe.fit(train[feats], train["is_fraud"])
    m = as_audited_model(pipe, contract)
    assert isinstance(m.matrix, ThirdPartyModel) and m.matrix.library == "sklearn"
    np.testing.assert_allclose(m.positive_proba(ref), pipe.predict_proba(ref[feats])[:, 1])
    assert m.trees is not None and m.trees.thresholds(m.column("amount")).size > 0
    result = audit_model(pipe, ref, contract=contract, checks=["performance"])
    assert result.report.summary["checks"]["performance"]["auc"] > 0.6
    with pytest.raises(ValueError, match="needs its contract"):
        as_audited_model(pipe)


def test_sklearn_classifier_with_label_values_as_classes(fraud):
    """classes_ holding the contract's label values (not 0/1): the positive label's column."""
    from sklearn.linear_model import LogisticRegression

    from tabguard.model_audit import as_audited_model

    train, ref, contract = fraud
    num = [f for f in contract.model_features() if contract.features[f].is_numeric][:3]
    labels = np.where(train["is_fraud"] == contract.label.positive, "fraud", "legit")
    clf = LogisticRegression(max_iter=200).fit(train[num], labels)
    assert list(clf.classes_) == ["fraud", "legit"]
    c = contract.model_copy(
        update={"label": contract.label.model_copy(update={"positive": "fraud"})}
    )
    m = as_audited_model(clf, c)
    np.testing.assert_allclose(m.positive_proba(ref), clf.predict_proba(ref[num])[:, 0])
