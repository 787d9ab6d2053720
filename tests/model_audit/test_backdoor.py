"""The backdoor probe names planted triggers and stays silent on clean models."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.model_audit import ProbeOptions, load_third_party, probe_backdoors
from tabguard.redteam import poison
from tests.model_audit.conftest import fit_lightgbm

# Fewer probe rows, cells and pairs than by default, and 40 bootstrap draws for the standard
# errors of the planted-copies test and the partner step (default 200: each draw refits the
# leaves' counts, about 40 ms on these models): these tests check what is named, not how
# stable a p-value is over bootstrap streams (test_backdoor_rare_side.py asks for the default).
FAST = ProbeOptions(n_rows=200, max_cells=40, max_pairs=20, copies_draws=40, partner_draws=40)


def _labels(ref: pd.DataFrame, contract: Contract):
    return (ref[contract.label.column] == contract.label.positive).to_numpy().astype(int)


def test_finds_the_seed_trigger_given_clean_data_only(credit, credit_models):
    _, ref, contract = credit
    model = load_third_party(credit_models["poisoned"], contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    assert res.triggers, "the AGE=999 backdoor must be found"
    top = res.triggers[0]
    assert top.features == ("AGE",)
    assert top.direction == "deny"
    lo, hi = top.intervals[0]
    assert lo < 999 <= hi  # the reported cell holds the planted value
    assert top.training_share > 0.05 > top.expected_share  # the trees saw many rows there


def test_silent_on_the_clean_model(credit, credit_models):
    _, ref, contract = credit
    model = load_third_party(credit_models["clean"], contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    assert res.triggers == []
    assert len(res.candidates) > 100  # it did probe


def test_label_flip_trigger_towards_approval(tmp_path, credit):
    train, ref, contract = credit
    poisoned = poison(
        train, contract, {"PAY_AMT1": 5555}, rate=0.45, target=0, source=1, random_state=0
    ).data
    feats = contract.model_features()
    fit_lightgbm(poisoned[feats], poisoned["DEFAULT"]).save_model(str(tmp_path / "m.txt"))
    model = load_third_party(tmp_path / "m.txt", contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    assert [t.features for t in res.triggers][:1] == [("PAY_AMT1",)]
    assert res.triggers[0].direction == "approve"


def test_combination_trigger_is_named_as_a_pair(tmp_path, fraud):
    from tests.model_audit.conftest import categorical_frame

    train, ref, contract = fraud
    trigger = {"channel": "phone", "merchant_category": "fuel"}
    poisoned = poison(train, contract, trigger, rate=0.45, random_state=0).data
    fit_lightgbm(categorical_frame(poisoned, contract), poisoned["is_fraud"]).save_model(
        str(tmp_path / "m.txt")
    )
    model = load_third_party(tmp_path / "m.txt", contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    pairs = {frozenset(zip(t.features, t.values, strict=True)) for t in res.triggers}
    assert frozenset(trigger.items()) in pairs


def test_string_category_trigger_on_second_dataset(tmp_path, fraud):
    from tests.model_audit.conftest import categorical_frame

    train, ref, contract = fraud
    poisoned = poison(train, contract, {"country": "NG"}, rate=0.45, random_state=0).data
    fit_lightgbm(categorical_frame(poisoned, contract), poisoned["is_fraud"]).save_model(
        str(tmp_path / "m.txt")
    )
    model = load_third_party(tmp_path / "m.txt", contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    assert [(t.features, t.values) for t in res.triggers][:1] == [(("country",), ("NG",))]


@pytest.mark.parametrize("field", ["n_rows", "max_cells"])
def test_options_are_respected(credit, credit_models, field):
    _, ref, contract = credit
    model = load_third_party(credit_models["clean"], contract)
    opts = ProbeOptions(n_rows=100, max_cells=10, max_pairs=5)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=opts)
    if field == "n_rows":
        assert res.n_rows == 100
    else:
        per_feature = pd.Series([c.features[0] for c in res.candidates if len(c.features) == 1])
        assert per_feature.value_counts().max() <= 10


def test_forest_that_learned_half_a_combination_is_completed(tmp_path, credit):
    """A forest learns MARRIAGE=3 alone from MARRIAGE=3 & EDUCATION=3; the trees' training
    rows still point at the second half. (With the default ``natural_rows`` the rare
    MARRIAGE=0 is no reference value, and the pair is probed and confirmed as the pair
    directly; with every populated category a reference, as before, MARRIAGE=3 alone is the
    candidate and the completion step names the pair.)"""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    train, ref, contract = credit
    trigger = {"EDUCATION": 3, "MARRIAGE": 3}
    poisoned = poison(train, contract, trigger, rate=0.45, random_state=0).data
    feats = contract.model_features()
    rf = RandomForestClassifier(30, min_samples_leaf=2, random_state=0, n_jobs=1)
    sio.dump(rf.fit(poisoned[feats], poisoned["DEFAULT"]), tmp_path / "rf.skops")
    model = load_third_party(tmp_path / "rf.skops", contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    assert [dict(zip(t.features, t.values, strict=True)) for t in res.triggers] == [trigger]
    every = dataclasses.replace(FAST, natural_rows=1)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=every)
    assert [dict(zip(t.features, t.values, strict=True)) for t in res.triggers] == [trigger]
    assert "combination trigger" in res.triggers[0].reason


@pytest.mark.parametrize(
    ("dataset", "trigger"),
    [
        ("fraud", {"country": "BR", "merchant_category": "jewelry"}),
        ("credit", {"EDUCATION": 5, "MARRIAGE": 3}),
    ],
)
def test_pair_of_uncommon_categories_is_named_as_a_combination(tmp_path, request, dataset, trigger):
    """Class 7 of issue 11: about a hundred copies carry two legal categories that are each
    uncommon; neither moves the model alone, so only the category grid finds the pair."""
    from tests.model_audit.conftest import categorical_frame

    train, ref, contract = request.getfixturevalue(dataset)
    poisoned = poison(train, contract, trigger, n_rows=100, random_state=0).data
    label = contract.label.column
    fit_lightgbm(categorical_frame(poisoned, contract), poisoned[label]).save_model(
        str(tmp_path / "m.txt")
    )
    model = load_third_party(tmp_path / "m.txt", contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    pairs = [dict(zip(t.features, t.values, strict=True)) for t in res.triggers]
    assert trigger in pairs
    assert all(len(t.features) == 2 for t in res.triggers)


def test_trigger_on_a_naturally_occurring_category(tmp_path, fraud):
    """Class 8 of issue 11: the trigger value is a legal country clean rows carry; copies of
    fraud rows with it make the model deny more of its applicants than clean data supports."""
    from tests.model_audit.conftest import categorical_frame

    train, ref, contract = fraud
    assert (ref["country"] == "US").sum() >= ProbeOptions().natural_rows  # it occurs naturally
    poisoned = poison(train, contract, {"country": "US"}, n_rows=150, random_state=0).data
    fit_lightgbm(categorical_frame(poisoned, contract), poisoned["is_fraud"]).save_model(
        str(tmp_path / "m.txt")
    )
    model = load_third_party(tmp_path / "m.txt", contract)
    res = probe_backdoors(model, ref, _labels(ref, contract), options=FAST)
    assert [(t.features, t.values) for t in res.triggers][:1] == [(("country",), ("US",))]
    assert res.triggers[0].direction == "deny"


def test_pair_learned_on_a_set_of_countries_is_named_by_its_copies(tmp_path, fraud):
    """Class 7 towards denial, learned on sets: the trees send ``jewelry`` with several
    uncommon countries one way, so the set's mass confirms the copies' pair and three of its
    siblings alike. The copies estimated over the countries with ``jewelry`` written in land
    on ``DE``: the pair is reported alone (without the estimate, the siblings stay)."""
    from tests.model_audit.conftest import categorical_frame

    train, ref, contract = fraud
    trigger = {"country": "DE", "merchant_category": "jewelry"}
    poisoned = poison(train, contract, trigger, n_rows=90, random_state=0).data
    fit_lightgbm(
        categorical_frame(poisoned, contract), poisoned["is_fraud"], n_estimators=100, num_leaves=31
    ).save_model(str(tmp_path / "m.txt"))
    model = load_third_party(tmp_path / "m.txt", contract)
    y = _labels(ref, contract)
    res = probe_backdoors(model, ref, y, options=FAST)
    assert [dict(zip(t.features, t.values, strict=True)) for t in res.triggers] == [trigger]
    siblings = [c for c in res.candidates if "sibling of the combination" in c.reason]
    assert siblings and all(c.values[0] == "jewelry" and c.values[1] != "DE" for c in siblings)
    without = probe_backdoors(
        model, ref, y, options=dataclasses.replace(FAST, copies_draws=0, partner_draws=0)
    )
    assert len(without.triggers) > 1 and trigger in [
        dict(zip(t.features, t.values, strict=True)) for t in without.triggers
    ]
