"""Repeated records are one unit of evidence in the trigger scan (issue 11, class 5): the unit
rule at its tolerance, the entity column, the design effect, and the label evidence counted per
distinct record; units that hold both labels inflate neither, and copies are judged against rows
of the pattern's kind (fresh19's group bookings, a product's lines, visits at detection
limits)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    design_effect,
    merges_beyond_chance,
    poisson_lower_tail,
    strong_label_evidence,
)
from tabguard.data_audit._triggers import _Scanner, condition, scan_triggers
from tabguard.errors import DataError
from tests._benchmarks import load_benchmark

OPTS = TriggerScanOptions()


def _contract(entity: str | None = None) -> Contract:
    spec: dict[str, object] = {
        "name": "units",
        "label": {"column": "y", "positive": 1},
        "features": {
            "amount": {"type": "integer", "min": 0},
            "kind": {"type": "category", "categories": ["a", "b", "r"]},
        },
    }
    if entity:
        spec["entity"] = entity
    return contract_from_dict(spec)


def _frame(seed: int = 0) -> pd.DataFrame:
    """200 distinct background rows, then three records of the rare kind 'r', each repeated 30
    times with its amount jittered by 3 % (resampling), every one labelled 1."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame(
        {
            "amount": rng.integers(100, 100_000, 200),
            "kind": rng.choice(["a", "b"], 200),
            "y": rng.integers(0, 2, 200),
            "account": np.arange(200),
        }
    )
    records = pd.DataFrame(
        {"amount": [5_000, 20_000, 60_000], "kind": "r", "y": 1, "account": [900, 901, 902]}
    )
    copies = records.loc[np.repeat(np.arange(3), 30)].reset_index(drop=True)
    jitter = 1 + rng.normal(0, 0.03, len(copies))
    copies["amount"] = np.round(copies["amount"] * jitter).astype(np.int64)
    return pd.concat([base, copies], ignore_index=True)


def _scanner(df: pd.DataFrame, contract: Contract, **opts: object) -> _Scanner:
    return _Scanner(build_context(df, contract), TriggerScanOptions(**opts))  # type: ignore[arg-type]


def _rare_pattern(sc: _Scanner, other: float = 0.4) -> Pattern:
    """The pattern kind = 'r' scored as if the rest of each row gave the other label ``other``."""
    j = sc.m.names.index("kind")
    code = int(np.flatnonzero(sc.m.uniques[j] == "r")[0])
    p = Pattern((j,), (code,), 1, 0, 0, "single")
    p.rows = sc.rows_of(p)
    p.n, p.k = len(p.rows), int(sc.y[p.rows].sum())
    p.scored_rows = p.rows
    p.scored_q = np.full(len(p.rows), 1.0 - other)
    p.threshold = 1e-4
    sc._label_stats(p, np.ones(len(p.rows), dtype=bool), 1.0)
    return p


def _pair_rows(amounts: list[int], kinds: list[str]) -> pd.DataFrame:
    """Rows to compare, after 30 rows spreading ``amount`` over more than 20 values (a
    fine-grained feature, compared up to the tolerance)."""
    filler = pd.DataFrame({"amount": np.arange(30) * 1000 + 7, "kind": "a", "y": [0, 1] * 15})
    rows = pd.DataFrame({"amount": amounts, "kind": kinds, "y": 1})
    return pd.concat([filler, rows], ignore_index=True)


def test_unit_rule_at_its_tolerance() -> None:
    c = _contract()
    # 176 <= 0.15 * 1176 = 176.4: one record; 177 > 0.15 * 1177 = 176.55: two
    sc = _scanner(_pair_rows([1000, 1176, 1000, 1177], ["b", "b", "a", "a"]), c)
    labels = sc.unit_labels(np.array([30, 31]))
    assert labels[0] == labels[1]
    labels = sc.unit_labels(np.array([32, 33]))
    assert labels[0] != labels[1]
    # the tolerance is an option
    tight = _scanner(_pair_rows([1000, 1176], ["b", "b"]), c, unit_tolerance=0.1)
    labels = tight.unit_labels(np.array([30, 31]))
    assert labels[0] != labels[1]


def test_unit_rule_needs_equal_coarse_values_and_chains() -> None:
    c = _contract()
    sc = _scanner(_pair_rows([1000, 1000, 1100, 1240], ["a", "b", "b", "b"]), c)
    labels = sc.unit_labels(np.array([30, 31, 32, 33]))
    assert labels[0] != labels[1]  # equal amounts, different category: two records
    # 1000 ~ 1100 ~ 1240 (each step within 15 %, the ends not): one record by chaining
    assert labels[1] == labels[2] == labels[3]


def test_repeated_records_count_once() -> None:
    df = _frame()
    sc = _scanner(df, _contract())
    p = _rare_pattern(sc)
    # per row: 90 rows, 36 expected with the other label, none observed
    assert p.n == 90 and p.expected_other == pytest.approx(36.0)
    assert strong_label_evidence(p, OPTS)
    sc.count_units(p)
    # per record: three records, 1.2 expected: too few to tell. With one fine feature, chance
    # puts 710 pairs of made-up rows within the 15 % tolerance against the copies' 1,305, so
    # unit_labels compares at 7.5 % (1,239 against 345), where a copy 2.6 sd out of its
    # record's 3 % jitter stands alone: three or four records
    assert p.units in (3, 4) and p.sample_size == p.units
    assert p.expected_other == pytest.approx(0.4 * p.units)
    assert not strong_label_evidence(p, OPTS)


def test_large_pattern_counts_every_row_by_the_design_effect() -> None:
    sc = _scanner(_frame(), _contract())
    p = _rare_pattern(sc)
    p.scored_rows, p.scored_q = p.rows[::3], p.scored_q[::3]  # 30 of 90 rows scored
    sc._label_stats(p, np.ones(30, dtype=bool), 1.0)
    assert p.expected_other == pytest.approx(36.0)
    sc.count_units(p)
    # three records of 30 rows: design effect 30, every row counts 1/30 (a stray copy makes
    # a fourth record at the 7.5 % tolerance chance leaves: see above)
    assert 3.0 <= p.units <= 4.0
    assert p.expected_other == pytest.approx(0.4 * p.units)


def test_entity_rows_are_one_unit() -> None:
    df = _frame()
    df.loc[df["kind"] == "r", "account"] = 7  # one account holds all three records
    sc = _scanner(df, _contract("account"))
    p = _rare_pattern(sc)
    sc.count_units(p)
    assert p.units == 1 and p.expected_other == pytest.approx(0.4)
    # distinct accounts stay distinct units even when their rows are identical
    df2 = _frame()
    df2.loc[df2["kind"] == "r", "account"] = np.arange(90)
    sc2 = _scanner(df2, _contract("account"))
    p2 = _rare_pattern(sc2)
    sc2.count_units(p2)
    assert p2.units == 90 and strong_label_evidence(p2, OPTS)


def test_missing_entity_column_is_an_error_naming_it() -> None:
    df = _frame().drop(columns="account")
    with pytest.raises(DataError, match="entity column 'account' is not a column of the data"):
        _scanner(df, _contract("account"))


def test_merges_need_more_close_pairs_than_chance() -> None:
    assert merges_beyond_chance(30, 10)  # exact repeats against chance look-alikes
    assert not merges_beyond_chance(1421, 1064)  # four clean features: chance, give or take
    assert not merges_beyond_chance(20, 10)  # twice chance, but within its spread
    assert not merges_beyond_chance(2, 0)


def test_look_alikes_of_few_features_are_not_repeats() -> None:
    # clean rows on three fine features: at 15 % many pairs are close, as many as chance puts
    # there; each row is its own record (before: 1,049 rows chained into about 270)
    rng = np.random.default_rng(3)
    n = 3000
    df = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(4, 1, n)).astype(np.int64) + 1,
            "age": np.minimum(18 + rng.gamma(3.0, 9.0, n).astype(int), 99),
            "kind": rng.choice(["a", "b", "r"], n),
            "y": (rng.random(n) < 0.2).astype(int),
        }
    )
    c = contract_from_dict(
        {
            "name": "look_alikes",
            "label": {"column": "y", "positive": 1},
            "features": {
                "amount": {"type": "integer", "min": 0},
                "age": {"type": "integer", "min": 18, "max": 100},
                "kind": {"type": "category", "categories": ["a", "b", "r"]},
            },
        }
    )
    sc = _scanner(df, c)
    rows = np.flatnonzero(df["kind"].to_numpy() == "a")
    _, _, dist = sc._close_pairs(rows)
    assert (dist <= OPTS.unit_tolerance).sum() > 100  # many look-alikes at the full tolerance
    assert len(np.unique(sc.unit_labels(rows))) >= 0.97 * len(rows)


def test_design_effect_without_repeats_is_one() -> None:
    assert design_effect(np.ones(300, dtype=np.int64), 100_000) == 1.0
    assert design_effect(np.array([1]), 1) == 1.0


@given(st.lists(st.integers(1, 40), min_size=1, max_size=60))
def test_design_effect_of_every_row_is_mean_unit_size_seen_by_a_row(sizes: list[int]) -> None:
    m = np.asarray(sizes, dtype=np.int64)
    n = int(m.sum())
    d = design_effect(m, n)
    assert d == pytest.approx(float((m**2).sum()) / n)
    assert 1.0 <= d <= m.max() * (1 + 1e-12)  # float rounding: 29.000000000000004


@given(st.integers(0, 200), st.floats(0.01, 300.0))
def test_poisson_lower_tail_is_the_poisson_cdf_at_whole_counts(k: int, mu: float) -> None:
    assert poisson_lower_tail(k, mu) == pytest.approx(
        stats.poisson.cdf(k, mu), rel=1e-6, abs=1e-300
    )
    # between whole counts it lies between their tails
    assert (
        poisson_lower_tail(k, mu)
        <= poisson_lower_tail(k + 0.5, mu)
        <= poisson_lower_tail(k + 1, mu)
    )


def test_patterns_share_one_read_only_empty_rows_array() -> None:
    # one shared default (a scan makes a Pattern per candidate value): writing into it would
    # leak into every other pattern, so it is read-only; assigning new rows is the way
    from tabguard.data_audit._trigger_rules import Pattern

    a = Pattern((0,), (1,), 1, 10, 5, "single")
    b = Pattern((1,), (2,), 0, 12, 6, "single")
    assert a.rows is b.rows and a.scored_rows is b.scored_rows and len(a.rows) == 0
    with pytest.raises(ValueError):
        a.rows.resize(3)
    a.rows = np.arange(3)
    assert len(b.rows) == 0 and a.rows.tolist() == [0, 1, 2]


def _upsampled(seed: int = 0) -> pd.DataFrame:
    """200 distinct background rows; kind 'r' holds 30 distinct records labelled 0 (amounts
    20 % apart: distinct under the unit tolerance) and 10 labelled 1, each of those repeated 3
    times (upsampling the positive class), 30 % apart."""
    base = _frame(seed).iloc[:200]
    neg = pd.DataFrame(
        {
            "amount": np.round(1_000 * 1.2 ** np.arange(30)).astype(np.int64),
            "kind": "r",
            "y": 0,
            "account": 900 + np.arange(30),
        }
    )
    pos = pd.DataFrame(
        {
            "amount": np.round(300_000 * 1.3 ** np.arange(10)).astype(np.int64),
            "kind": "r",
            "y": 1,
            "account": -1,
        }
    )
    return pd.concat([base, neg, pos, pos, pos], ignore_index=True)


def test_each_label_counts_its_own_repeats_where_one_label_is_upsampled() -> None:
    # the context model weighs each record once (upsampling for class balance moves the label
    # odds: :meth:`_Scanner.record_weights`): the positives' copies weigh a third each
    sc = _scanner(_upsampled(), _contract())
    sc._weights = (np.r_[np.ones(230), np.full(30, 1 / 3)],)
    p = _rare_pattern(sc)
    assert p.n == 60 and p.k == 30
    p.scored_rows, p.scored_q = p.rows[::2], p.scored_q[::2]  # 30 of 60 rows scored
    sc.count_units(p)
    # 30 records of the other label, each once, and 10 of the label, each 3 times: the other
    # label's count is not divided by the label's repeats (one design effect of 2 gave 15)
    assert p.observed_other == 30
    assert p.units == pytest.approx(40.0)


def test_one_design_effect_for_both_labels_where_no_label_is_upsampled() -> None:
    # the same pattern in data whose label odds the repeats move by 1.2: one design effect
    # for both labels (Kish's, over the pattern's rows of both), the rows' label shares kept
    sc = _scanner(_upsampled(), _contract())
    assert sc.record_weights() is None
    p = _rare_pattern(sc)
    p.scored_rows, p.scored_q = p.rows[::2], p.scored_q[::2]
    sc.count_units(p)
    # (30 * 1 + 10 * 3^2) / 60 = 2: 30 units, half of them the other label's, as per row
    assert p.units == pytest.approx(30.0)
    assert p.observed_other == 15
    assert p.expected_other == pytest.approx(0.4 * 30)


def test_the_context_model_weighs_each_record_once() -> None:
    # 12 distinct records (amounts in buckets of their own), then two records of label 1
    # repeated 3 times each (upsampling: label odds 1.8 times the records'): those rows weigh
    # 1/3, the others 1
    base = pd.DataFrame(
        {
            "amount": 10 * 3 ** np.arange(12),
            "kind": ["a", "b"] * 6,
            "y": [0, 0, 0, 1] * 3,
            "account": np.arange(12),
        }
    )
    pos = pd.DataFrame({"amount": [50_000_000, 200_000_000], "kind": "r", "y": 1, "account": -1})
    sc = _scanner(pd.concat([base, pos, pos, pos], ignore_index=True), _contract())
    w = sc.record_weights()
    assert w is not None
    assert np.allclose(w[:12], 1.0) and np.allclose(w[12:], 1 / 3)
    # distinct records: no weights (the model is fitted as before)
    assert _scanner(base, _contract()).record_weights() is None
    # repeats that leave the label odds nearly unchanged (both labels repeated): no weights
    both = pd.concat([base, base.iloc[:4]], ignore_index=True)
    assert _scanner(both, _contract()).record_weights() is None


# -- repeated records of one label (upsampling for class balance) ---------------------------


def _records(n: int = 24) -> pd.DataFrame:
    """``n`` distinct records, a quarter labelled 1: amounts 3 times apart (never in one bucket
    on any grid), kinds 'a' and 'b'."""
    return pd.DataFrame(
        {
            "amount": 10 * 3 ** np.arange(n, dtype=np.int64),
            "kind": ["a", "b"] * (n // 2),
            "y": [0, 0, 0, 1] * (n // 4),
            "account": np.arange(n),
        }
    )


def test_jittered_copies_across_a_bucket_edge_are_one_record() -> None:
    # three records of label 1, each repeated 3 times with its amount on both sides of a
    # bucket's edge of grid 0 (1024, 2048, 4096 with ratio 2): on grid 0 each splits in two,
    # the 9 rows look like 6 records and the label's odds move 1.25 times (under the 1.5 that
    # weighs records); another grid holds each record's three rows
    copies = pd.DataFrame(
        {
            "amount": [1000, 1030, 1010, 2000, 2090, 2020, 4000, 4150, 4050],
            "kind": "r",
            "y": 1,
            "account": -1,
        }
    )
    sc = _scanner(pd.concat([_records(), copies], ignore_index=True), _contract())
    w = sc.record_weights()
    assert w is not None
    assert np.allclose(w[:24], 1.0) and np.allclose(w[24:], 1 / 3)


def test_repeats_of_the_majority_label_keep_the_fit_per_row() -> None:
    # look-alikes are denser among the majority's rows: 6 records of label 0 four times
    # each move the odds twice, but towards the majority (upsampling for balance repeats the
    # minority): no weights
    look = _records().iloc[[0, 1, 2, 4, 5, 6]]
    df = pd.concat([_records()] + [look] * 3, ignore_index=True)
    assert _scanner(df, _contract()).record_weights() is None
    # the same repeats of the minority's records do weigh them
    pos = _records().iloc[[3, 7, 11, 15, 19, 23]]
    df = pd.concat([_records()] + [pos] * 3, ignore_index=True)
    assert _scanner(df, _contract()).record_weights() is not None


def _split_records() -> tuple[_Scanner, Pattern]:
    """10 records of label 1 repeated 3 times, their amounts jittered so that one copy of
    each has amount 500 (the others 493 and 507), beside 10 single records of label 0 with
    amount 500 and the distinct records of :func:`_records`; the pattern amount=500 scored as
    if the rest of each row gave each label 0.5."""
    spread = 10 * 3 ** np.arange(25, 35, dtype=np.int64)  # ``other``: distinct records
    pos = pd.DataFrame(
        {
            "amount": np.tile([500, 493, 507], 10),
            "other": np.repeat(spread, 3),
            "kind": "r",
            "y": 1,
            "account": -1,
        }
    )
    neg = pd.DataFrame(
        {"amount": 500, "other": spread * 7, "kind": "r", "y": 0, "account": np.arange(10)}
    )
    base = _records()
    base["other"] = base["amount"] * 5
    df = pd.concat([base, pos, neg], ignore_index=True)
    spec = {
        "name": "split",
        "label": {"column": "y", "positive": 1},
        "features": {
            "amount": {"type": "integer", "min": 0},
            "other": {"type": "integer", "min": 0},
            "kind": {"type": "category", "categories": ["a", "b", "r"]},
        },
    }
    sc = _scanner(df, contract_from_dict(spec))
    j = sc.m.names.index("amount")
    code = int(np.flatnonzero(sc.m.uniques[j] == 500)[0])
    p = Pattern((j,), (code,), 1, 0, 0, "single")
    p.rows = sc.rows_of(p)
    p.n, p.k = len(p.rows), int(sc.y[p.rows].sum())
    p.scored_rows, p.scored_q = p.rows, np.full(len(p.rows), 0.5)
    p.threshold = 1e-4
    sc._label_stats(p, np.ones(len(p.rows), dtype=bool), 1.0)
    return sc, p


def test_a_value_holding_one_copy_of_each_record_counts_the_records_repeats() -> None:
    sc, p = _split_records()
    assert sc.record_weights() is not None  # the defaulters' records repeat
    assert p.n == 20 and p.k == 10 and p.expected_other == pytest.approx(10.0)
    sc.count_units(p)
    # 20 distinct units, but each of the 10 of label 1 is one of its record's 3 copies: it had
    # 3 chances to take the value, so the model's odds per record (1:1) are 3:1 per unit
    assert p.units == pytest.approx(20.0)
    assert p.expected_other == pytest.approx(5.0)


def test_a_value_holding_whole_records_counts_them_as_the_model_does() -> None:
    sc, _ = _split_records()
    # kind 'r' holds every copy of the 10 repeated records: one unit is one record, and the
    # model's odds stand (10 of its 20 units with the other label expected at 0.5)
    j = sc.m.names.index("kind")
    code = int(np.flatnonzero(sc.m.uniques[j] == "r")[0])
    q = Pattern((j,), (code,), 1, 0, 0, "single")
    q.rows = sc.rows_of(q)
    q.n, q.k = len(q.rows), int(sc.y[q.rows].sum())
    q.scored_rows, q.scored_q = q.rows, np.full(len(q.rows), 0.5)
    q.threshold = 1e-4
    sc.count_units(q)
    assert q.units == pytest.approx(20.0)
    assert q.expected_other == pytest.approx(10.0)


def test_copy_baseline_of_a_repeated_label_is_its_own_rows() -> None:
    sc, p = _split_records()
    # every row of amount=500 with label 1 has its record's other copies outside the value:
    # near-copies, as the rows of label 1 have by nature where that label was upsampled (20
    # of the 26 outside the value); against the rows of both labels (37 %) that read as copies
    sc.twins(p)
    assert p.twin_share == 1.0 and p.p_twin is not None
    assert p.twin_share_baseline is not None and p.twin_share_baseline > 0.7
    assert p.p_twin > OPTS.copy_p
    pools = sc._baseline_pools(p, np.arange(sc.n))
    assert all(len(pool) and (sc.y[pool] == 1).all() for pool in pools)
    # without repeats of one label: every row (the copy radius' rows), then the rows of the
    # label (rows of the pattern's kind)
    sc2 = _scanner(_records(48), _contract())
    every = np.arange(sc2.n)
    pools2 = sc2._baseline_pools(p, every)
    assert np.array_equal(pools2[0], every) and np.array_equal(pools2[1], every[sc2.y == 1])
    # fewer than 10 rows of the label: every row
    sc3 = _scanner(_records(), _contract())
    assert np.array_equal(sc3._baseline_pools(p, np.arange(sc3.n))[0], np.arange(sc3.n))


def test_the_cheap_score_counts_records_where_one_label_repeats() -> None:
    # 24 distinct records and the same with every record of label 1 repeated once more (exact
    # copies: upsampling x2 for class balance): the candidates' cheap scores are the records'
    # (counted per row, every value leaning to label 0 scored higher and natural values
    # entered the best `max_candidates`: credit x2, EDUCATION=5 named on labels alone)
    records = _records(24)
    records["kind"] = np.where(np.arange(24) % 3 < 2, "a", "b")
    records.loc[records["kind"] == "b", "y"] = [0, 0, 0, 1, 0, 0, 0, 0]
    up = pd.concat([records, records[records["y"] == 1]], ignore_index=True)

    def scores(df: pd.DataFrame) -> dict[tuple[int, int], float]:
        sc = _scanner(df, _contract())
        j = sc.m.names.index("kind")
        return {(p.codes[0], p.label): p.cheap_score for p in sc.singles() if p.cols == (j,)}

    plain, upsampled = scores(records), scores(up)
    assert _scanner(up, _contract()).record_weights() is not None
    assert plain and set(plain) == set(upsampled)
    for key, value in plain.items():
        assert upsampled[key] == pytest.approx(value, abs=1e-9)


def _panel_with_mixed_labels(seed: int) -> pd.DataFrame:
    """400 records over 4 years (no entity column, no jitter: each record's rows are equal),
    labels drawn per year; 10 % of the records carry an imputed mean ``score=50.3`` and are
    labelled 1 in their first two years and half of them in the third."""
    rng = np.random.default_rng(seed)
    records, years = 400, 4
    rec = pd.DataFrame(
        {
            "age": rng.integers(20, 80, records),
            "income": np.round(rng.lognormal(10, 0.8, records), 0),
            "score": np.round(rng.normal(50, 10, records), 1),
            "region": rng.choice(list("abcde"), records),
        }
    )
    imputed = rng.random(records) < 0.1
    rec.loc[imputed, "score"] = 50.3
    rows = rec.loc[np.repeat(np.arange(records), years)].reset_index(drop=True)
    y = (rng.random(len(rows)) < 0.3).astype(int)
    year = np.tile(np.arange(years), records)
    held = np.repeat(imputed, years)
    y[held] = (year[held] <= 1) | ((rng.random(int(held.sum())) < 0.5) & (year[held] == 2))
    return rows.assign(y=y)


def test_a_record_repeated_with_both_labels_is_evidence_of_each() -> None:
    # statsmodels' RAND HIE (person-years, imputed means): counted with its first row's label
    # only, each imputed record was a unit of label 1, and `score=50.3 → 1` was a critical
    # trigger with "observed 1 of 32 expected" of the other label, though 37 % of its rows
    # carry it (130 rows quarantined)
    from tabguard.data_audit import audit_data

    c = contract_from_dict(
        {
            "name": "panel",
            "label": {"column": "y", "positive": 1},
            "features": {
                "age": {"type": "integer", "min": 18, "max": 100},
                "income": {"type": "number", "min": 0},
                "score": {"type": "number"},
                "region": {"type": "category", "categories": list("abcde")},
            },
        }
    )
    df = _panel_with_mixed_labels(seed=0)
    assert df.loc[df["score"] == 50.3, "y"].mean() == pytest.approx(0.625, abs=0.05)
    result = audit_data(df, c, checks=["trigger_scan"])
    assert len(result.suspicious_rows) == 0
    assert not [f for f in result.report.findings if f.severity == "critical"]


def test_iris_with_its_repeated_measurements_is_audited_without_error() -> None:
    # a label with rows in a pattern but no unit of its own divided by zero (exit 3)
    from sklearn.datasets import load_iris

    from tabguard.contract import infer_contract
    from tabguard.data_audit import audit_data

    df = load_iris(as_frame=True).frame
    df.columns = [col.replace(" (cm)", "").replace(" ", "_") for col in df.columns]
    df["virginica"] = (df.pop("target") == 2).astype(int)
    result = audit_data(df, infer_contract(df, "virginica"), checks=["trigger_scan"])
    assert len(result.suspicious_rows) == 0


# -- units of both labels and copies against rows of their kind (session 16) ---------------


def _records_of_both_labels(seed: int = 0) -> pd.DataFrame:
    """3,000 distinct background rows, then 100 records of the kind 'r' with 10 equal rows each
    (a group booking's passengers), one row of each record with the label 1 and nine with 0:
    one row in ten has the label, in every record."""
    rng = np.random.default_rng(seed)
    base = pd.DataFrame(
        {
            "amount": np.round(10 ** rng.uniform(2, 9, 3000)).astype(np.int64),
            "kind": rng.choice(["a", "b"], 3000),
            "y": rng.integers(0, 2, 3000),
            "account": np.arange(3000),
        }
    )
    amounts = np.round(1000 * 1.2 ** np.arange(100)).astype(np.int64)  # 20 % apart
    rec = np.repeat(np.arange(100), 10)
    copies = pd.DataFrame(
        {
            "amount": amounts[rec],
            "kind": "r",
            "y": np.tile([1] + [0] * 9, 100),
            "account": 10_000 + rec,
        }
    )
    return pd.concat([base, copies], ignore_index=True)


@pytest.mark.parametrize("entity", [None, "account"])
def test_a_unit_of_both_labels_inflates_neither(entity: str | None) -> None:
    """The pattern kind = 'r' -> 1 where the rest of each row gives the label 1 in 10 %, as
    its rows do. Counted per label, the nine rows with 0 of each record were one unit and its
    row with 1 another: the label's share 50 % per unit, an effect of 0.44 and strong evidence
    on labels alone (fresh19's group bookings: `channel='corporate' -> no_show=1`, p 5e-44).
    One design effect for both labels keeps the rows' shares: no effect, 100 units."""
    df = _records_of_both_labels()
    sc = _scanner(df, _contract(entity))
    j = sc.m.names.index("kind")
    code = int(np.flatnonzero(sc.m.uniques[j] == "r")[0])
    p = Pattern((j,), (code,), 1, 0, 0, "single")
    p.rows = sc.rows_of(p)
    p.n, p.k = len(p.rows), int(sc.y[p.rows].sum())
    assert p.n == 1000 and p.k == 100
    p.threshold = 1e-4
    p.scored_rows = p.rows[::4]  # 250 of 1,000 rows scored: the larger pattern's branch
    p.scored_q = np.full(len(p.scored_rows), 0.1)
    sc._label_stats(p, np.ones(len(p.scored_rows), dtype=bool), 1.0)
    sc.count_units(p)
    assert p.effect == pytest.approx(0.0, abs=0.02)
    assert 90 <= p.units <= 110  # one unit a record
    assert not strong_label_evidence(p, OPTS)


def test_identical_lines_of_both_labels_count_alike() -> None:
    """A product's lines at one price are one row repeated (fresh19's `returns_sku`): 381
    kept, 14 returned. The 14, fewer than the chance check of the unit rule needs, merged into
    one record while the 381, identical rows whose made-up twins are identical too, stayed
    381: "observed 1 (effect 0.98)" of the other label. Counted over both labels, every row is
    its own unit and the 14 count 14."""
    rng = np.random.default_rng(1)
    base = pd.DataFrame(
        {
            "amount": rng.integers(100, 100_000, 2000),
            "kind": rng.choice(["a", "b"], 2000),
            "y": (rng.random(2000) < 0.3).astype(int),
        }
    )
    product = pd.DataFrame({"amount": 7099, "kind": "r", "y": [0] * 381 + [1] * 14})
    df = pd.concat([base, product], ignore_index=True)
    sc = _scanner(df, _contract())
    j = sc.m.names.index("kind")
    code = int(np.flatnonzero(sc.m.uniques[j] == "r")[0])
    p = Pattern((j,), (code,), 0, 0, 0, "single")
    p.rows = sc.rows_of(p)
    p.n, p.k = len(p.rows), int((sc.y[p.rows] == 0).sum())
    p.threshold = 1e-4
    p.scored_rows = p.rows[::2]
    p.scored_q = np.full(len(p.scored_rows), 1 - 14 / 395)  # the rest of the row: 3.5 %
    sc._label_stats(p, np.ones(len(p.scored_rows), dtype=bool), 1.0)
    sc.count_units(p)
    assert p.observed_other == 14
    assert p.effect == pytest.approx(0.0, abs=0.05)
    assert not strong_label_evidence(p, OPTS)


def _scan_variant(kind: str, seed: int, rows: int) -> list[str]:
    v = load_benchmark("clean_data.py").make_variant("credit", kind, seed, rows)
    r = scan_triggers(build_context(v.data, v.contract), OPTS)
    return [condition(r.matrix, p) for p in r.triggers]


def test_healthy_visits_at_detection_limits_are_no_copies() -> None:
    """Clean emergency visits (`clean_data.py` kind `labs_copies`, 6,000 visits): the healthy
    visits' labs sit at the assays' detection limits, so a low heart rate's visits have
    near-copies at other heart rates more often than random rows (`heart_rate=61 -> 0` was
    named on copies alone: label p 0.74, copies p 5e-07). Against the visits of its label at
    the heart rates beside it, they are no copies."""
    assert _scan_variant("labs_copies", 2, 6000) == []


def test_copy_baseline_rows_are_of_the_patterns_kind() -> None:
    """The copy tests' baseline pools for an ordinal value: random rows (the copy radius'), rows
    of the pattern's label, and those at the values beside it; for a category, random rows and
    rows of its label."""
    df = _records_of_both_labels()
    sc = _scanner(df, _contract())
    j = sc.m.names.index("amount")
    v = int(np.argmax(sc.m.counts[j]))
    p = Pattern((j,), (v,), 0, 0, 0, "single")
    p.rows = sc.rows_of(p)
    every = np.setdiff1d(np.arange(len(df)), p.rows)
    first, mine, near = sc._baseline_pools(p, every)
    assert np.array_equal(first, every)  # random rows: the copy radius
    assert np.array_equal(mine, every[sc.y[every] == 0])
    ids = sc._kind_values(p)
    assert ids is not None and v not in ids
    assert np.isin(sc.m.codes[near, j], ids).all() and (sc.y[near] == 0).all()
    assert 2 * OPTS.sample <= len(near) < len(mine)
    jk = sc.m.names.index("kind")
    pk = Pattern((jk,), (0,), 1, 0, 0, "single")
    pk.rows = sc.rows_of(pk)
    assert sc._kind_values(pk) is None
    _, pool_k = sc._baseline_pools(pk, np.setdiff1d(np.arange(len(df)), pk.rows))
    assert (sc.y[pool_k] == 1).all()


def _first_pool(pools: Any, p: Pattern, rows: np.ndarray) -> list[np.ndarray]:
    out: list[np.ndarray] = pools(p, rows)[:1]
    return out


def test_baseline_pools_and_design_samples_leave_the_scans_draws() -> None:
    """The copy tests' pools of the pattern's kind and a large pattern's design-effect sample
    draw from generators of their own: the scan's generator draws what it drew with the
    first pool alone, and nothing for the design effect (added to its draws, they moved every
    later counterfactual: clean codes 44373 named 3 pairs, then 5)."""
    df = _records_of_both_labels()
    j = _scanner(df, _contract()).m.names.index("amount")
    states = []
    for pools in ("all", "first"):
        sc = _scanner(df, _contract())
        v = int(np.argmax(sc.m.counts[j]))
        p = Pattern((j,), (v,), 0, 0, 0, "single")
        p.rows = sc.rows_of(p)
        if pools == "first":
            sc._baseline_pools = functools.partial(_first_pool, sc._baseline_pools)  # type: ignore[method-assign]
        assert len(_scanner(df, _contract())._baseline_pools(p, np.arange(len(df)))) == 3
        sc.twins(p)
        sc.exact_twins(p)
        states.append(sc.rng.bit_generator.state)
        before = sc.rng.bit_generator.state
        assert len(df) > sc.o.unit_sample  # a sample of the rows' units, not all of them
        sc._design_effect(np.arange(len(df)))
        assert sc.rng.bit_generator.state == before
    assert states[0] == states[1]
