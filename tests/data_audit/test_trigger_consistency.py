"""Rows of a value written in place (issue 11, class 3): the natural rows carrying the value
follow the rest of their row and stay out of the suspects; the rows an attacker wrote it into
do not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    consistency_cut,
    written_context_evidence,
)
from tabguard.data_audit._triggers import _Scanner, condition, scan_triggers
from tabguard.datasets import card_fraud_contract, make_card_fraud


def _contract() -> Contract:
    return contract_from_dict(
        {
            "name": "chain",
            "label": {"column": "y", "positive": 1},
            "features": {
                "before": {"type": "integer", "min": -2, "max": 8},
                "status": {"type": "integer", "min": -2, "max": 8},
                "amount": {"type": "number", "min": 0},
                "kind": {"type": "category", "categories": ["a", "b", "c"]},
            },
        }
    )


def _chain(n: int, seed: int) -> pd.DataFrame:
    """A delay chain: ``status`` is ``before`` plus one month (or paid, -1), as repayment
    statuses are; ``kind`` depends on nothing."""
    rng = np.random.default_rng(seed)
    before = rng.choice([-1, 0, 1, 2, 3, 7], n, p=[0.3, 0.5, 0.08, 0.07, 0.04, 0.01])
    paid = rng.random(n) < 0.1
    status = np.where(paid, -1, np.minimum(before + 1, 8))
    return pd.DataFrame(
        {
            "before": before,
            "status": status,
            "amount": np.round(rng.lognormal(8, 1, n), 2),
            "kind": rng.choice(["a", "b", "c"], n, p=[0.45, 0.45, 0.1]),
            "y": (rng.random(n) < np.where(before >= 2, 0.6, 0.2)).astype(int),
        }
    )


def _written(
    df: pd.DataFrame, col: str, value: Any, k: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """``value`` written into ``k`` rows labelled 0 that do not carry it (in place)."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero((df["y"] == 0).to_numpy() & (df[col] != value).to_numpy())
    rows = np.sort(rng.choice(pool, k, replace=False))
    out = df.copy()
    out.loc[rows, col] = value
    return out, rows


def _pattern(sc: _Scanner, col: str, value: Any) -> Pattern:
    j = sc.m.names.index(col)
    code = int(np.flatnonzero(sc.m.uniques[j] == value)[0])
    rows = sc.m.rows_with(j, code)
    p = Pattern((j,), (code,), 0, len(rows), int((sc.y[rows] == 0).sum()), "single", rows=rows)
    p.flagged = p.written = True
    return p


def test_natural_carriers_of_a_written_value_stay_out() -> None:
    """``status = 8`` follows ``before = 7`` naturally; written into 120 ordinary rows, only those
    are suspects."""
    df, written = _written(_chain(6000, 0), "status", 8, 120, 1)
    natural = np.flatnonzero((df["status"] == 8).to_numpy() & ~np.isin(np.arange(len(df)), written))
    assert len(natural) >= 30
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    p = _pattern(sc, "status", 8)
    kept = sc.consistent_rows(p)
    assert np.isin(natural, kept).mean() >= 0.9
    assert np.isin(written, kept).mean() <= 0.03
    suspects = sc.suspect_rows(p)
    assert np.isin(written, suspects).mean() >= 0.97
    assert np.isin(natural, suspects).mean() <= 0.1
    # the threshold is an option: at a low quantile of ordinary rows, written rows are kept out too
    loose = _Scanner(build_context(df, _contract()), TriggerScanOptions(written_consistency=0.6))
    assert np.isin(written, loose.consistent_rows(_pattern(loose, "status", 8))).mean() > 0.2


def test_a_value_the_row_does_not_predict_keeps_every_row_suspect() -> None:
    """``kind = c`` depends on nothing: written or natural, its rows look alike, and all of them
    stay suspect (labels decided; the rest of the row cannot tell)."""
    df, _ = _written(_chain(6000, 0), "kind", "c", 300, 2)
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    p = _pattern(sc, "kind", "c")
    assert len(sc.consistent_rows(p)) <= 0.01 * len(p.rows) + 2
    assert len(sc.suspect_rows(p)) >= 0.99 * len(p.rows) - 2


def test_contract_breaking_written_values_keep_every_row() -> None:
    """No natural row can carry a value that breaks the contract: no model is asked."""
    df, _ = _written(_chain(3000, 0), "before", 9, 60, 3)
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    p = _pattern(sc, "before", 9)
    assert sc.m.breaks_contract[p.cols[0]][p.codes[0]]
    sc.consistent_rows = None  # type: ignore[method-assign,assignment]  # must not be called
    assert np.array_equal(sc.suspect_rows(p), np.sort(p.rows))


def _strict_chain(n: int, seed: int) -> pd.DataFrame:
    """The chain without its random payments: every value of ``status`` follows ``before``
    (a payment at random is a value independent of the rest of the row, like ``kind``)."""
    df = _chain(n, seed)
    df["status"] = np.minimum(df["before"] + 1, 8)
    return df


def _measured(df: pd.DataFrame, col: str, value: Any) -> Pattern:
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    p = _pattern(sc, col, value)
    p.flagged = p.written = False
    sc.context_mixture(p)
    p.threshold = 1e-4  # a family's Bonferroni threshold
    return p


def test_a_block_written_in_place_has_the_context_of_its_source() -> None:
    """``status = 4`` follows ``before = 3``; written into 600 ordinary rows labelled 0, most of
    its rows have the context of those rows, far beyond the feature's other values (each sits
    in its chain): the mixture test fires."""
    df, _ = _written(_strict_chain(6000, 0), "status", 4, 600, 4)
    p = _measured(df, "status", 4)
    assert p.context_share >= 0.6
    assert p.context_null <= 0.3
    assert p.p_context <= 1e-6
    assert p.context_source in ("every row", "rows with label 0")


def test_a_block_a_little_larger_than_the_natural_carriers_is_confirmed_by_its_estimate() -> None:
    """``status = 4`` written into 200 rows labelled 0 beside 154 natural carriers (a written
    share of 0.56, credit ``MARRIAGE=3``'s shape: 584 beside 323): the write is significant
    far beyond the family's threshold and measured at more than a half, but on a few hundred
    rows its bound (two standard errors) is under the half, and the value was left to its
    labels (``p_context`` 1). The size is estimated; the existence is the test."""
    df, _ = _written(_strict_chain(4000, 0), "status", 4, 200, 4)
    p = _measured(df, "status", 4)
    assert p.context_written == pytest.approx(0.63, abs=0.02)
    assert p.context_null <= 0.1
    assert p.p_context <= 1e-12 and p.p_context <= p.context_threshold
    p.effect, p.p_label = 0.36, 1e-8  # the labels' hint, as the scan measures them
    assert written_context_evidence(p, TriggerScanOptions())


def test_natural_values_with_a_context_of_their_own_are_not_written() -> None:
    """On the clean chain every value of ``status`` follows ``before``: none is measured as
    written, whichever is asked."""
    df = _strict_chain(6000, 0)
    for value in (0, 1, 2, 3, 4):
        p = _measured(df, "status", value)
        assert p.p_context > 1e-3, value
        assert p.context_share < 0.5, value


def test_a_feature_the_row_does_not_predict_gives_no_evidence() -> None:
    """``kind`` depends on nothing: a block written into ``kind = c`` looks like its source, and
    so do the natural values; the null is as high as the share can be, and nothing is
    confirmed (the rest of the row cannot tell)."""
    df, _ = _written(_chain(6000, 0), "kind", "c", 600, 5)
    p = _measured(df, "kind", "c")
    assert p.context_null >= 0.8
    assert p.p_context > 1e-3


def test_a_value_independent_of_the_row_raises_the_null() -> None:
    """With random payments (``status = -1`` whatever came before) one value of the feature
    already looks like random rows: the same block is no longer beyond what the feature's
    values show (the null is the largest share among them)."""
    df, _ = _written(_chain(6000, 0), "status", 4, 600, 4)
    p = _measured(df, "status", 4)
    assert p.context_null >= 0.8
    assert p.p_context > 1e-3


def test_the_context_test_is_corrected_over_the_values_it_can_test() -> None:
    """Its family is the coded values in contract with at least ``context_min_rows`` rows on a
    feature with two of them or more (a value needs another for its null): not the amounts, not
    the rare values; the threshold of a measured value is the single values' rate over them."""
    df = _strict_chain(2000, 0)
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    held = {c: int((df[c].value_counts() >= 30).sum()) for c in ("before", "status", "kind")}
    assert held["before"] < df["before"].nunique()  # before = 7: about 20 rows, not tested
    assert sc.context_tests() == sum(held.values())
    p = _pattern(sc, "status", 4)
    sc.context_mixture(p)
    assert p.context_threshold == TriggerScanOptions().alpha / 4 / sum(held.values())


def test_the_consistency_cut_is_the_highest_of_every_sources() -> None:
    # Written rows are rows of a source not known: every row, or one label's. Where one
    # label's rows score higher than the rows at large (defaulters, whose delays resemble a
    # natural carrier's), every row's quantile would keep a share of that source's written
    # rows out (credit PAY_4=3: 11 of 547 written defaulters' rows, 2 %).
    rng = np.random.default_rng(0)
    labels = (rng.random(20_000) < 0.2).astype(np.int8)
    scores = rng.normal(0.0, 1.0, 20_000) + 1.5 * labels
    cut = consistency_cut(scores, labels, 0.999)
    assert cut == max(
        float(np.quantile(scores, 0.999)), float(np.quantile(scores[labels == 1], 0.999))
    )
    assert cut > float(np.quantile(scores, 0.999))
    assert np.mean(scores[labels == 1] > cut) <= 0.0011  # a quantile of 3,960 rows
    # one label only: the rows at large and that label's
    assert consistency_cut(scores[:10], np.zeros(10, dtype=np.int8), 0.5) == float(
        np.quantile(scores[:10], 0.5)
    )


def _fraud_written(country: str, k: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """8,000 synthetic card transactions with ``country`` written into ``k`` random rows of
    any label, labelled legitimate, 18 % of them then made frauds (inplace seed 83418 #1's
    shape, ``NG``: 674 rows beside 414 natural)."""
    df = make_card_fraud(8000, random_state=0)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(df["country"].to_numpy() != country)
    rows = np.sort(rng.choice(pool, k, replace=False))
    df.loc[rows, "country"] = country
    df.loc[rows, "is_fraud"] = 0
    df.loc[rng.choice(rows, round(0.18 * k), replace=False), "is_fraud"] = 1
    return df, rows


def test_a_write_into_a_category_told_by_a_distance_is_named_by_its_context() -> None:
    # A country's natural carriers differ from other rows by the distance alone (a foreign
    # country's transactions 1,500 km from home, the home country's 12 km): the coded features
    # see every country alike (r0 about 1) and the slope stays short of its bar, so nothing was
    # named (seen failing before the fine-grained instrument). Read with the distance by its
    # order of magnitude, 70 % of NG's rows have the context of every row, against 4 % for
    # the feature's other values.
    data, truth = _fraud_written("NG", 300, 1)
    result = scan_triggers(build_context(data, card_fraud_contract()), TriggerScanOptions())
    names = [condition(result.matrix, p) for p in result.triggers]
    assert names == ["country='NG'"], names
    (p,) = result.triggers
    assert p.written and p.p_context <= p.context_threshold
    assert p.context_written >= 0.5 and p.context_null <= 0.2
    assert np.isin(truth, result.suspects).mean() >= 0.95


def test_the_fine_grained_instrument_finds_no_write_on_clean_data() -> None:
    # The same data without the write: with the distance read, no country has more of the
    # context of a source than the others (the home country's rows sit at home, the others'
    # abroad); each instrument counts at half the bar (the p-value doubled).
    sc = _Scanner(
        build_context(make_card_fraud(8000, random_state=0), card_fraud_contract()),
        TriggerScanOptions(),
    )
    j = sc.m.names.index("country")
    for code in sc.context_stats(j, magnitude=True)["values"]:
        for label in (0, 1):
            p = Pattern((j,), (int(code),), label, 100, 50, "single")
            sc.context_mixture(p)
            assert p.p_context > 1e-3, (sc.m.uniques[j][code], label, p.p_context)
