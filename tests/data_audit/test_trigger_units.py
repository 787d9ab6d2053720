"""Repeated records are one unit of evidence in the trigger scan (issue 11, class 5): the unit
rule at its tolerance, the entity column, the design effect, and the label evidence counted per
distinct record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._triggers import (
    Pattern,
    TriggerScanOptions,
    _Scanner,
    design_effect,
    poisson_lower_tail,
    strong_label_evidence,
)
from tabguard.errors import DataError

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
    # per record: three records, 1.2 expected: too few to tell
    assert p.units == 3 and p.sample_size == 3
    assert p.expected_other == pytest.approx(1.2)
    assert not strong_label_evidence(p, OPTS)


def test_large_pattern_counts_every_row_by_the_design_effect() -> None:
    sc = _scanner(_frame(), _contract())
    p = _rare_pattern(sc)
    p.scored_rows, p.scored_q = p.rows[::3], p.scored_q[::3]  # 30 of 90 rows scored
    sc._label_stats(p, np.ones(30, dtype=bool), 1.0)
    assert p.expected_other == pytest.approx(36.0)
    sc.count_units(p)
    # three records of 30 rows: design effect 30, every row counts 1/30
    assert p.units == pytest.approx(3.0)
    assert p.expected_other == pytest.approx(1.2)


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
    from tabguard.data_audit._triggers import Pattern

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


def test_each_label_counts_its_own_repeats() -> None:
    sc = _scanner(_upsampled(), _contract())
    p = _rare_pattern(sc)
    assert p.n == 60 and p.k == 30
    p.scored_rows, p.scored_q = p.rows[::2], p.scored_q[::2]  # 30 of 60 rows scored
    sc.count_units(p)
    # 30 records of the other label, each once, and 10 of the label, each 3 times: the other
    # label's count is not divided by the label's repeats (one design effect of 2 gave 15)
    assert p.observed_other == 30
    assert p.units == pytest.approx(40.0)
    assert p.expected_other == pytest.approx(0.4 * 40)


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
