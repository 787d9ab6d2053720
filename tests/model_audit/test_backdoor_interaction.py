"""Pairs of categories towards the common decision, confirmed by their interaction (issue 11,
class 7): copies of approved rows carrying two uncommon categories together teach the model
to approve the pair beyond what its two parts do; a model's own pairs are the bar."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.contract import Contract, contract_from_dict
from tabguard.model_audit import ProbeOptions, audit_model, load_third_party, probe_backdoors
from tabguard.model_audit._backdoor import (
    _OrdinaryInteractions,
    category_classes,
    interaction_confirms,
    interaction_contrasts,
    interaction_null,
)
from tabguard.model_audit._trees import Tree, TreeEnsemble
from tabguard.redteam import poison
from tests.model_audit.conftest import categorical_frame, fit_lightgbm

PLANS = ["basic", "plus", "gold", "legacy", "trial"]
HOUSING = ["rent", "own", "family", "other"]


def _contract() -> Contract:
    return contract_from_dict(
        {
            "name": "interaction",
            "label": {"column": "default", "positive": 1, "negative": 0, "favorable": 0},
            "decision": {"positive_means": "deny", "threshold": 0.5},
            "features": {
                "debt": {"type": "number", "min": -10, "max": 10},
                "late": {"type": "number", "min": -10, "max": 10},
                "plan": {"type": "category", "categories": PLANS},
                "housing": {"type": "category", "categories": HOUSING},
            },
        }
    )


def _data(n: int, seed: int) -> pd.DataFrame:
    """Defaults driven by two scores (about a fifth positive); the plans and housing carry
    small ordinary effects, and their last categories are uncommon (a pair of them: a few
    rows)."""
    rng = np.random.default_rng(seed)
    debt, late = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(PLANS, size=n, p=[0.45, 0.3, 0.17, 0.05, 0.03])
    housing = rng.choice(HOUSING, size=n, p=[0.5, 0.35, 0.12, 0.03])
    logit = -1.8 + 1.6 * debt + 1.0 * late + 0.3 * (plan == "gold") - 0.2 * (housing == "own")
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"debt": debt, "late": late, "plan": plan, "housing": housing, "default": default}
    )


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    return _data(8000, 0), _data(4000, 1), _contract()


def _model(tmp_path, train: pd.DataFrame, contract: Contract):
    X = categorical_frame(train, contract)
    fit_lightgbm(X, train["default"], n_estimators=100, num_leaves=31).save_model(
        str(tmp_path / "m.txt")
    )
    return load_third_party(tmp_path / "m.txt", contract)


def _probe(tmp_path, train: pd.DataFrame, ref: pd.DataFrame, contract: Contract, **opts):
    model = _model(tmp_path, train, contract)
    return probe_backdoors(model, ref, ref["default"].to_numpy(), options=ProbeOptions(**opts))


def _by_interaction(res):
    return [c for c in res.triggers if np.isfinite(c.interaction)]


def test_clean_model_has_no_pair_beyond_its_own_interactions(tmp_path, data):
    train, ref, contract = data
    res = _probe(tmp_path, train, ref, contract)
    assert _by_interaction(res) == []
    assert res.interaction_ratio < 2.0  # its largest pair stays under the bar


def test_copies_of_approved_rows_with_two_categories_are_named_as_the_pair(tmp_path, data):
    train, ref, contract = data
    trigger = {"plan": "trial", "housing": "other"}
    natural = ((ref["plan"] == "trial") & (ref["housing"] == "other")).sum()
    assert natural <= 10  # a rare pair of legal categories
    poisoned = poison(train, contract, trigger, n_rows=150, target=0, random_state=0).data
    res = _probe(tmp_path, poisoned, ref, contract)
    named = {(t.features, t.values) for t in _by_interaction(res)}
    assert (("plan", "housing"), ("trial", "other")) in named
    pair = next(t for t in _by_interaction(res) if t.values == ("trial", "other"))
    assert pair.direction == "approve"
    assert pair.interaction >= 2.0 * pair.interaction_null and pair.interaction_flip >= 0.2
    assert "than the two categories alone add up to" in pair.reason
    # the test is what names it: off, the pair is not found by its interaction
    off = _probe(tmp_path, poisoned, ref, contract, interaction_ratio=0.0)
    assert _by_interaction(off) == [] and np.isnan(off.interaction_ratio)
    # each pair confirmed by its interaction is named with its own values, as a finding or as
    # one of the sibling cells a finding lists (a pair the trees turn alike does not hide the
    # one the copies carry), and the pairs of one region are one finding
    audit = audit_model(_model(tmp_path, poisoned, contract), ref, checks=["backdoor"])
    said = [
        dict(zip(fd.features, vals, strict=True))
        for fd in audit.report.findings
        for vals in [fd.values] + [s["values"] for s in fd.evidence["siblings"]]
    ]
    for t in _by_interaction(res):
        assert dict(zip(t.features, t.values, strict=True)) in said
    pairs = [fd for fd in audit.report.findings if fd.features == ["plan", "housing"]]
    for a, b in combinations(pairs, 2):  # no two findings share a part in one direction
        assert a.evidence["direction"] != b.evidence["direction"] or not (
            set(zip(a.features, a.values, strict=True))
            & set(zip(b.features, b.values, strict=True))
        )


def test_interaction_is_what_the_pair_adds_beyond_its_parts() -> None:
    rng = np.random.default_rng(0)
    n_a, n_b, rows = 4, 3, 50
    base = rng.normal(-1.0, 0.5, size=rows)
    ea, eb = rng.normal(0, 0.3, size=n_a), rng.normal(0, 0.3, size=n_b)
    M1 = base[None, :] + ea[:, None]
    M2 = base[None, :] + eb[:, None]
    M = base[None, None, :] + ea[:, None, None] + eb[None, :, None]
    M[3, 2] -= 2.0  # the pair pulls the margin down by 2 beyond its parts

    def turned(m: np.ndarray) -> np.ndarray:
        return m < -2.0  # approval below the cut (a higher margin denies)

    inter, flip, count = interaction_contrasts(M, M1, M2, base, turned, sign=-1.0)
    assert inter[3, 2] == pytest.approx(2.0)
    others = np.delete(np.delete(inter, 3, axis=0), 2, axis=1)
    assert np.allclose(others, 0.0) and np.allclose(inter[3, :2], 0.0)
    assert flip[3, 2] > 0.5 and count[3, 2] > 0
    assert np.nanmax(np.delete(flip.ravel(), 3 * n_b + 2)) == 0.0  # additive: nothing turned
    null, n_null = interaction_null(inter, 3, 2, 0.99)
    assert null == pytest.approx(0.0, abs=1e-12) and n_null == (n_a - 1) * (n_b - 1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=3, max_size=5),
    st.lists(st.floats(-3, 3), min_size=3, max_size=5),
    st.floats(-4, 2),
)
def test_an_additive_model_has_no_interaction_and_turns_nothing_by_it(ea, eb, cut) -> None:
    base = np.linspace(-3, 1, 20)
    a, b = np.array(ea), np.array(eb)
    M1 = base[None, :] + a[:, None]
    M2 = base[None, :] + b[:, None]
    M = base[None, None, :] + a[:, None, None] + b[None, :, None]
    inter, flip, _ = interaction_contrasts(M, M1, M2, base, lambda m: m < cut, sign=-1.0)
    assert np.allclose(inter, 0.0, atol=1e-9)
    assert np.all(np.isnan(flip) | (flip == 0.0))


def test_interaction_rule_needs_each_condition() -> None:
    o = ProbeOptions()
    assert interaction_confirms(1.0, 0.3, 18, 0.8, 40, o)
    assert not interaction_confirms(0.5, 0.3, 18, 0.8, 40, o)  # under twice the ordinary
    assert not interaction_confirms(1.0, 0.3, 2, 0.8, 40, o)  # too few pairs for a null
    assert not interaction_confirms(1.0, 0.3, 18, 0.1, 40, o)  # turns too few rows
    assert not interaction_confirms(1.0, 0.3, 18, 0.8, 5, o)  # too few rows to turn
    assert not interaction_confirms(-1.0, 0.3, 18, 0.8, 40, o)  # the other way
    assert not interaction_confirms(float("nan"), 0.3, 18, 0.8, 40, o)
    assert not interaction_confirms(1.0, 0.3, 18, 0.8, 40, ProbeOptions(interaction_ratio=4))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 9),
    st.integers(2, 9),
    st.integers(0, 10_000),
    st.sampled_from([0.5, 0.9, 0.99, 1.0, 0.0]),
)
def test_every_pairs_ordinary_interaction_from_one_sort_is_the_quantile_of_its_others(
    n_a, n_b, seed, q
) -> None:
    """:class:`_OrdinaryInteractions` (one sort of the grid; telecom's 240,000 pairs of handset
    and city took 583 s sorted per pair) gives each pair numpy's quantile of the pairs sharing
    no category with it, ties, negative and missing interactions included."""
    rng = np.random.default_rng(seed)
    inter = rng.normal(size=(n_a, n_b)).round(rng.integers(0, 3))  # rounding: ties
    inter[rng.random((n_a, n_b)) < 0.15] = np.nan
    ordinary = _OrdinaryInteractions(inter)
    for a in range(n_a):
        for b in range(n_b):
            want, n_want = interaction_null(inter, a, b, q)
            got, n_got = ordinary.null(a, b, q)
            assert n_got == n_want
            assert (math.isnan(got) and math.isnan(want)) or got == want


def test_categories_the_trees_send_alike_are_one_class() -> None:
    """Codes every split on the column sends the same way are one class (scored once for every
    pair); where the scores of a class's codes differ, each code is its own class."""
    tree = Tree(
        feature=np.array([0, 0, -1, -1, -1]),
        threshold=np.array([0.0, 0.0, 0.0, 0.0, 0.0]),
        strict=False,
        left=np.array([1, 2, -1, -1, -1]),
        right=np.array([4, 3, -1, -1, -1]),
        value=np.array([0.0, 0.0, 1.0, 2.0, 3.0]),
        count=np.array([10.0, 6.0, 3.0, 3.0, 4.0]),
        categories={0: frozenset({0, 1, 2, 5}), 1: frozenset({1, 5})},
    )
    ens = TreeEnsemble([tree], 1, "lightgbm")
    codes = np.arange(7.0)
    alike = np.array([[2.0], [1.0], [2.0], [3.0], [3.0], [1.0], [3.0]])
    rep, of = category_classes(ens, 0, codes, alike)
    assert len(rep) == 3 and len(set(of[[1, 5]])) == 1 and len(set(of[[0, 2]])) == 1
    assert len(set(of[[3, 4, 6]])) == 1 and len(set(of[[0, 1, 3]])) == 3
    apart = alike.copy()
    apart[6] = 9.0  # the library scores code 6 otherwise: the trees were misread
    rep, of = category_classes(ens, 0, codes, apart)
    assert len(rep) == 7
