"""A category written in place with a label into many rows lends it to every other category
of its feature (issue 11, class 3): all of them may hint towards the other label, and the
re-test without the values leaning the other way (:func:`leaning_the_other_way`) then leaves
it nothing to draw. A re-test that measures nothing keeps the decision (:func:`_retest`)."""

from __future__ import annotations

import numpy as np

from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _nothing_to_draw, _Scanner, condition, scan_triggers
from tabguard.datasets import card_fraud_contract, make_card_fraud


def test_a_category_written_into_many_rows_is_named_beside_the_hints_it_lent() -> None:
    """``country='BR'`` written into 8 % of 8,000 transactions drawn at random, as frauds
    (12 % left legitimate), the countries but PT and BR read as ES (three countries, each of
    the other two with enough rows to hint). BR leans to fraud and the other two countries'
    counterfactual draws it, so both hint towards legitimate; before, both were kept out of
    BR's re-test, and BR, with nothing left to draw, measured nothing and was cleared (as the
    benchmark's inplace 9890 #5, 1,955 rows, R 0)."""
    df = make_card_fraud(8000, random_state=0)
    df.loc[~df["country"].isin(["PT", "ES", "BR"]), "country"] = "ES"
    rng = np.random.default_rng(3)
    pool = np.flatnonzero(df["country"].to_numpy() != "BR")
    rows = np.sort(rng.choice(pool, 640, replace=False))
    df.loc[rows, "country"] = "BR"
    df.loc[rows, "is_fraud"] = (rng.random(len(rows)) >= 0.12).astype(int)
    res = scan_triggers(build_context(df, card_fraud_contract()), TriggerScanOptions())
    assert res is not None
    named = [condition(res.matrix, p) for p in res.triggers]
    assert named == ["country='BR'"], named
    assert np.isin(rows, res.suspects).mean() >= 0.95


def test_a_two_valued_feature_with_its_other_value_left_out_is_measured_again() -> None:
    """Only several other values, every one left out, are a written value's lending: a
    two-valued feature's other value leans the other way wherever the feature predicts the
    label, and a natural flag kept flagged for it was named on clean data (clean_data's
    definitional 79356, credit ``COVERED=1``)."""
    df = make_card_fraud(3000, random_state=1)
    df.loc[~df["country"].isin(["PT", "ES"]), "country"] = "ES"
    sc = _Scanner(build_context(df, card_fraud_contract()), TriggerScanOptions())
    j = sc.m.names.index("country")
    codes = np.flatnonzero(sc.m.counts[j])
    assert len(codes) == 2
    p = Pattern((j,), (int(codes[0]),), 1, 100, 100, "single")
    sc.excluded = {(j, int(codes[1]))}
    assert not len(sc._replacements(j, int(codes[0]))[0])  # nothing left to draw
    assert not _nothing_to_draw(sc, p)  # and yet measured again
