"""The vectorised statistics behind D2 and D4, against scipy and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from tabguard.data_audit._stats import (
    Dense,
    auc_from_counts,
    bh_adjust,
    chi2_independence,
    crossfit_rate_auc,
    mann_whitney,
    skewness,
    wilson_interval,
)

# Small integer values force many ties, the case where rank statistics usually go wrong.
samples = st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=4, max_size=80).filter(
    lambda v: 0 < sum(b for _, b in v) < len(v)
)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_mann_whitney_matches_scipy(data: list[tuple[int, bool]]) -> None:
    x = np.array([v for v, _ in data], dtype=float)
    y = np.array([b for _, b in data], dtype=np.int64)
    got = mann_whitney(x, y)
    ref = stats.mannwhitneyu(x[y == 1], x[y == 0], method="asymptotic")
    assert got.u == pytest.approx(ref.statistic)
    if np.unique(x).size > 1:
        assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert got.auc == pytest.approx(roc_auc_score(y, x))


@settings(max_examples=60, deadline=None)
@given(samples)
def test_auc_from_counts_matches_sklearn(data: list[tuple[int, bool]]) -> None:
    x = np.array([v for v, _ in data], dtype=float)
    y = np.array([b for _, b in data], dtype=np.int64)
    values, inv = np.unique(x, return_inverse=True)
    pos = np.bincount(inv, weights=y, minlength=len(values))
    neg = np.bincount(inv, minlength=len(values)) - pos
    assert auc_from_counts(values, pos, neg) == pytest.approx(roc_auc_score(y, x))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 3), st.just(math.nan)), min_size=2, max_size=50))
def test_dense_mid_ranks_match_rankdata(values: list[float]) -> None:
    x = np.array(values, dtype=float)
    ok = ~np.isnan(x)
    d = Dense.of(x)
    ranks = d.mid_ranks()
    if ok.any():
        assert np.allclose(ranks[ok], stats.rankdata(x[ok]))
        assert np.allclose(ranks[~ok], (ok.sum() + 1) / 2)
    assert (d.codes[~ok] == -1).all()


def test_crossfit_auc_of_an_identifier_is_chance() -> None:
    # A unique id per row has an in-sample AUC of 1; cross-fitted it carries nothing.
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.3).astype(np.int64)
    assert crossfit_rate_auc(np.arange(4000), y, rng) == pytest.approx(0.5, abs=0.03)
    # A real category effect survives cross-fitting.
    g = rng.integers(0, 4, 4000)
    y2 = (rng.random(4000) < np.array([0.1, 0.2, 0.5, 0.8])[g]).astype(np.int64)
    assert crossfit_rate_auc(g, y2, rng) > 0.75


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(np.array([0, 5, 50]), np.array([10, 10, 100]))
    assert low[0] == 0 and high[0] == pytest.approx(0.2775, abs=1e-4)
    assert (low[1], high[1]) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert (low[2], high[2]) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_bh_keeps_nan_and_matches_scipy() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    out = bh_adjust(p)
    assert np.isnan(out[1])
    ok = ~np.isnan(p)
    assert np.allclose(out[ok], stats.false_discovery_control(p[ok]))


def test_chi2_drops_empty_rows_and_gives_cramers_v() -> None:
    table = np.array([[30, 10], [0, 0], [10, 30]])
    chi2, p, dof, v = chi2_independence(table)
    ref = stats.chi2_contingency(table[[0, 2]], correction=False)
    assert (chi2, p, dof) == pytest.approx((ref.statistic, ref.pvalue, ref.dof))
    assert v == pytest.approx(math.sqrt(ref.statistic / 80))
    assert math.isnan(chi2_independence(np.array([[5, 5]]))[0])


def test_skewness_is_pandas_definition() -> None:
    import pandas as pd

    x = np.random.default_rng(2).lognormal(0, 1, 500)
    x[::7] = np.nan
    assert skewness(x) == pytest.approx(pd.Series(x).skew())
    assert skewness(np.full(10, 3.0)) == 0.0
