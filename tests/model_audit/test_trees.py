"""The tree readers reproduce each library's own predictions from the parsed structure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.model_audit import read_trees
from tabguard.model_audit._model import encode_raw
from tests.model_audit.conftest import categorical_frame


def _codes(X: pd.DataFrame) -> np.ndarray:
    out = X.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].cat.codes
    return out.to_numpy(dtype=float)


def _sum_leaves(ens, Xn: np.ndarray) -> np.ndarray:
    return np.array([sum(t.value[t.leaf_of(r)] for t in ens.trees) for r in Xn])


def test_lightgbm_with_categorical_splits(fraud: tuple[pd.DataFrame, pd.DataFrame, Contract]):
    import lightgbm as lgb

    train, _, contract = fraud
    X = categorical_frame(train, contract)
    m = lgb.LGBMClassifier(
        n_estimators=8, verbose=-1, n_jobs=1, min_data_per_group=5, cat_smooth=1
    ).fit(X, train["is_fraud"])
    ens = read_trees(m, list(X.columns))
    assert ens is not None and ens.source == "lightgbm"
    assert any(t.categories for t in ens.trees)  # categorical splits were parsed
    Xn = _codes(X.iloc[:300])
    np.testing.assert_allclose(_sum_leaves(ens, Xn), m.predict(X.iloc[:300], raw_score=True))


def test_xgboost_with_categories_and_indicator(fraud):
    xgb = pytest.importorskip("xgboost")
    train, _, contract = fraud
    X = categorical_frame(train, contract)
    m = xgb.XGBClassifier(
        n_estimators=8, max_depth=4, enable_categorical=True, max_cat_to_onehot=1, n_jobs=1
    ).fit(X, train["is_fraud"])
    ens = read_trees(m, list(X.columns))
    assert ens is not None and ens.source == "xgboost" and ens.strict
    Xn = _codes(X.iloc[:300])
    margin = m.get_booster().predict(
        xgb.DMatrix(X.iloc[:300], enable_categorical=True), output_margin=True
    )
    mine = _sum_leaves(ens, Xn)
    # the base margin is a constant offset
    assert np.ptp(margin - mine) < 1e-4


def test_sklearn_forest_and_thresholds(credit):
    from sklearn.ensemble import RandomForestClassifier

    train, _, contract = credit
    feats = contract.model_features()
    rf = RandomForestClassifier(5, max_depth=6, random_state=0).fit(train[feats], train["DEFAULT"])
    ens = read_trees(rf, feats)
    assert ens is not None and ens.source == "sklearn"
    Xn = train[feats].iloc[:200].to_numpy(dtype=float)
    mine = _sum_leaves(ens, Xn) / len(ens.trees)
    np.testing.assert_allclose(mine, rf.predict_proba(train[feats].iloc[:200])[:, 1], atol=1e-9)
    j = feats.index("PAY_0")
    assert ens.thresholds(j).size > 0
    assert sum(ens.threshold_counts(j).values()) >= ens.thresholds(j).size


def test_unreadable_objects_give_none():
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    assert read_trees(lr, ["a", "b", "c", "d"]) is None
    assert read_trees(object(), ["a"]) is None


def test_encode_raw_codes_unknown_category_as_nan():
    df = pd.DataFrame({"c": ["a", "z"], "x": [1, 2]})
    X = encode_raw(df, ["c", "x"], {"c": ["a", "b"]})
    assert X[0, 0] == 0 and np.isnan(X[1, 0]) and X[1, 1] == 2


def _category_tree() -> object:
    """Root: country in {1, 2} left (60 rows) / else right (40); left splits x1 <= 0.5."""
    from tabguard.model_audit._trees import Tree, TreeEnsemble

    nan = np.nan
    tree = Tree(
        feature=np.array([0, 1, -1, -1, -1]),
        threshold=np.array([nan, 0.5, nan, nan, nan]),
        strict=False,
        left=np.array([1, 2, -1, -1, -1]),
        right=np.array([4, 3, -1, -1, -1]),
        value=np.array([nan, nan, 1.0, 0.0, 0.0]),
        count=np.array([100.0, 60.0, 20.0, 40.0, 40.0]),
        categories={0: frozenset({1, 2})},
    )
    return TreeEnsemble([tree], 2, "lightgbm")


def test_isolated_share_of_a_category_set():
    """A leaf confined to {1, 2} counts for the set {1, 2} (or a superset) but not for 1 alone:
    its rows may be 2s."""
    ens = _category_tree()
    inf = np.inf
    assert ens.isolated_share([(0, -inf, inf, 1)]) == 0.0
    assert ens.isolated_share([(0, -inf, inf, frozenset({1, 2}))]) == 0.6
    assert ens.isolated_share([(0, -inf, inf, frozenset({1, 2, 5}))]) == 0.6
    assert ens.isolated_share([(0, -inf, inf, frozenset({1, 2})), (1, -inf, 0.5, None)]) == 0.2
    assert ens.isolated_share([(0, -inf, inf, frozenset({1}))]) == 0.0


def test_route_matches_leaf_of_and_admits_follows_the_splits():
    """Vectorised routing agrees with the row-by-row walk (categorical split, threshold,
    unknown category); ``admits`` marks the nodes a value of the split column can reach."""
    ens = _category_tree()
    t = ens.trees[0]
    X = np.array([[1, 0.2], [2, 0.9], [3, 0.1], [np.nan, 0.4], [1, 0.5]])
    assert t.route(X).tolist() == [t.leaf_of(r) for r in X] == [2, 3, 4, 4, 2]
    assert t.admits(0, 1.0).tolist() == [True, True, True, True, False]
    assert t.admits(0, 3.0).tolist() == [True, False, False, False, True]
    # column 1 is split below the category only: a value of it reaches one leaf of each side
    assert t.admits(1, 0.9).tolist() == [True, True, False, True, True]


def test_routed_mass_counts_training_rows_beyond_the_clean_rows_routed_there():
    """The region category 1 reaches and category 3 does not is the left branch (60 of 100
    training rows). Clean rows routed there: 30 of 100, of which 10 carry the value. The
    training side has 30 % more than the clean side: the value's implied share 1 + 0.3 / 0.1."""
    from tabguard.model_audit._backdoor import routed_mass

    ens = _category_tree()
    X = np.array([[1.0, 0.2]] * 10 + [[2.0, 0.9]] * 20 + [[3.0, 0.0]] * 70)
    leaves = np.column_stack([t.route(X) for t in ens.trees])
    natural = X[:, 0] == 1.0
    excess, ratio, p = routed_mass(ens, leaves, None, 0, 1.0, [3.0], natural)
    assert math.isclose(excess, 0.3)
    assert math.isclose(ratio, 1 + 0.3 / (11 / 101))
    assert p < 0.01  # 60 of the 90 rows in the region are training rows, 45 expected
    # no excess when clean rows reach the region as often as training rows did
    X2 = np.array([[1.0, 0.2]] * 20 + [[2.0, 0.9]] * 40 + [[3.0, 0.0]] * 40)
    leaves2 = np.column_stack([t.route(X2) for t in ens.trees])
    excess2, ratio2, p2 = routed_mass(ens, leaves2, None, 0, 1.0, [3.0], X2[:, 0] == 1.0)
    assert excess2 == 0.0 and ratio2 == 1.0 and p2 > 0.05
    # a neighbour the trees never separate from the value: no region, nothing measured
    assert all(math.isnan(v) for v in routed_mass(ens, leaves, None, 0, 1.0, [2.0], natural))


def test_routed_mass_beyond_an_ordinary_ratio():
    """Against an ordinary ratio the same excess is less significant, and not significant at
    all once the ordinary ratio reaches the value's own; excess and ratio do not change."""
    from tabguard.model_audit._backdoor import routed_mass

    ens = _category_tree()
    X = np.array([[1.0, 0.2]] * 10 + [[2.0, 0.9]] * 20 + [[3.0, 0.0]] * 70)
    leaves = np.column_stack([t.route(X) for t in ens.trees])
    natural = X[:, 0] == 1.0
    excess, ratio, p = routed_mass(ens, leaves, None, 0, 1.0, [3.0], natural)
    e2, r2, p2 = routed_mass(ens, leaves, None, 0, 1.0, [3.0], natural, null_ratio=1.5)
    _, _, p_at = routed_mass(ens, leaves, None, 0, 1.0, [3.0], natural, null_ratio=ratio)
    assert (e2, r2) == (excess, ratio)
    assert p < p2 < 0.05 < p_at


def test_admits_is_cached_and_read_only():
    t = _category_tree().trees[0]
    first = t.admits(0, 1.0)
    assert t.admits(0, 1.0) is first and not first.flags.writeable
    assert t.admits(0, 3.0).tolist() == [True, False, False, False, True]


def test_xgboost_covers_are_hessians_at_the_rebuilt_margins(fraud):
    """The routed and planted-copies tests weigh rows by p (1 - p) at the margin before each
    tree, rebuilt from the leaf values and the model's scores: it is XGBoost's own margin, and
    the training rows' weights summed per leaf are the covers the trees store (no
    approximation; what limits those tests on XGBoost is the held-out clean rows)."""
    xgb = pytest.importorskip("xgboost")
    from tabguard.model_audit._backdoor import _Routing

    train, _, contract = fraud
    X = categorical_frame(train, contract)
    m = xgb.XGBClassifier(
        n_estimators=20, max_depth=4, enable_categorical=True, n_jobs=1, random_state=0
    ).fit(X, train["is_fraud"])
    ens = read_trees(m, list(X.columns))
    assert ens is not None
    Xn = _codes(X)
    routing = _Routing(ens, Xn, m.predict_proba(X)[:, 1])
    w = routing.weights()
    assert w is not None and w.shape == (len(X), 20)
    dm = xgb.DMatrix(X, enable_categorical=True)
    for t in (1, 7, 19):
        margin = m.get_booster().predict(dm, output_margin=True, iteration_range=(0, t))
        q = 1.0 / (1.0 + np.exp(-margin))
        np.testing.assert_allclose(w[:, t], q * (1.0 - q), rtol=1e-4)
    leaves = routing.leaves()
    for t in (0, 10, 19):
        tree = ens.trees[t]
        cover = np.bincount(leaves[:, t], weights=w[:, t], minlength=len(tree.feature))
        lf = tree.leaves()
        np.testing.assert_allclose(cover[lf], tree.count[lf], rtol=1e-4)


def test_code_classes_reach_the_same_leaf_from_every_row() -> None:
    # planted_copies routes one code per class of codes a tree sends alike: every code of a
    # class must reach its representative's leaf from any row, and codes of two classes must
    # part at some split on the column
    import lightgbm as lgb

    from tabguard.model_audit._backdoor import _code_classes
    from tabguard.model_audit._trees import read_trees

    rng = np.random.default_rng(3)
    n, n_codes = 3000, 40
    X = np.column_stack([rng.integers(0, n_codes, n), rng.normal(size=n)]).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 1] + (X[:, 0] % 5 == 0))))).astype(int)
    params = {"objective": "binary", "verbose": -1, "min_data_per_group": 10, "cat_smooth": 1}
    data = lgb.Dataset(X, y, categorical_feature=[0], feature_name=["code", "x"])
    ens = read_trees(lgb.train(params, data, 20), ["code", "x"])
    assert ens is not None
    sizes = []
    for tree in ens.trees:
        reps, of_code = _code_classes(tree, 0, n_codes)
        sizes.append(len(reps))
        assert of_code.shape == (n_codes,) and sorted(set(of_code.tolist())) == list(
            range(len(reps))
        )
        leaf = {}
        for w in range(n_codes):
            Xw = X[:200].copy()
            Xw[:, 0] = w
            leaf[w] = tree.route(Xw)
        for w in range(n_codes):
            assert np.array_equal(leaf[w], leaf[reps[of_code[w]]])
        nodes = np.flatnonzero(tree.feature == 0)
        for a in range(len(reps)):
            for b in range(a + 1, len(reps)):
                assert any(
                    tree.goes_left(int(nd), reps[a]) != tree.goes_left(int(nd), reps[b])
                    for nd in nodes
                )
    assert max(sizes) > 1 and min(sizes) < n_codes  # the test sees classes, and merges codes
