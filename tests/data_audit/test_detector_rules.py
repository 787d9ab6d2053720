"""Unit tests of the near-duplicate, label-noise and RONI decision rules, one threshold at a time,
and row-order invariance of the near-duplicate check on small constructed data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._duplicates import (
    NearDuplicates,
    NearDuplicatesOptions,
    conflicting_duplicates,
    dominant_value,
)
from tabguard.data_audit._label_noise import excess_disagreement
from tabguard.data_audit._roni import RoniGroup, RoniOptions, confirmed, helps

ND = NearDuplicatesOptions()
RO = RoniOptions()


# -- near-duplicates ---------------------------------------------------------------------------


def test_dominant_value_each_threshold() -> None:
    # share is measured against the half of the rows a written-in value reaches: 0.5 / 2
    assert dominant_value(0.25, 5, 5.0, ND)
    assert not dominant_value(0.24, 50, 50.0, ND)
    assert not dominant_value(0.5, 4, 50.0, ND)  # min_pairs copies
    assert not dominant_value(0.5, 50, 4.9, ND)  # a common value dominates natural pairs too
    assert dominant_value(0.5, 50, 4.9, NearDuplicatesOptions(enrichment=4.0))


def test_conflicting_duplicates_each_threshold() -> None:
    assert not conflicting_duplicates(4, 4, ND)  # a handful is never a warning
    assert not conflicting_duplicates(100, 5, ND)
    assert conflicting_duplicates(10, 6, ND)  # more than max(5, half of 10)
    assert not conflicting_duplicates(20, 10, ND)
    assert conflicting_duplicates(20, 11, ND)


@given(
    share=st.floats(0.0, 1.0),
    count=st.integers(0, 1000),
    enrichment=st.floats(0.0, 1e3),
    more=st.floats(0.0, 1.0),
)
def test_dominance_is_monotone(share: float, count: int, enrichment: float, more: float) -> None:
    before = dominant_value(share, count, enrichment, ND)
    after = dominant_value(min(1.0, share + more), count + 1, enrichment * (1 + more), ND)
    assert after >= before


def _copies_frame(n: int, n_copies: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 1000, n),
            "b": rng.integers(0, 1_000_000, n),
            "c": rng.choice(["x", "y", "z"], n),
            "y": rng.integers(0, 2, n),
        }
    )
    copies = df.sample(n_copies, random_state=seed).copy()
    copies["a"] = 4242  # the written-in value
    return pd.concat([df, copies], ignore_index=True)


_CONTRACT = contract_from_dict(
    {
        "name": "copies",
        "label": {"column": "y", "positive": 1},
        "features": {
            "a": {"type": "integer"},
            "b": {"type": "integer"},
            "c": {"type": "category", "categories": ["x", "y", "z"]},
        },
    }
)


def _near_dup_view(df: pd.DataFrame, order: np.ndarray) -> set[tuple[str, str, frozenset[int]]]:
    res = NearDuplicates().run(build_context(df, _CONTRACT))
    # rows in the audit's positions mapped back to the original rows
    return {
        (f.severity, f.message.split(" (")[0], frozenset(int(order[r]) for r in f.rows))
        for f in res.findings
    }


def test_written_in_value_on_copies_is_a_warning() -> None:
    df = _copies_frame(600, 30, 0)
    res = NearDuplicates().run(build_context(df, _CONTRACT))
    (warn,) = [f for f in res.findings if f.severity == "warning"]
    assert warn.features == ["a"] and warn.values == [4242]
    assert set(warn.rows) == set(range(600, 630))
    few = NearDuplicates().run(build_context(_copies_frame(600, 4, 0), _CONTRACT))
    assert not [f for f in few.findings if f.severity == "warning"]  # under min_pairs


def test_a_narrow_table_of_independent_codes_has_no_written_in_value() -> None:
    # four coded columns: nearly every row differs from another in one feature only, so the
    # few rows left are no reference; measured on every row, the commonest category is as
    # common among the pairs as anywhere (fresh20's claims: "29 %, against 0.0 % of other rows")
    rng = np.random.default_rng(3)
    n = 5000
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 6, n),
            "b": rng.integers(0, 7, n),
            "c": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1]),
            "y": rng.integers(0, 2, n),
        }
    )
    res = NearDuplicates().run(build_context(df, _CONTRACT))
    assert [f.severity for f in res.findings if f.features == ["c"]] == ["info"]
    assert not [f for f in res.findings if f.severity == "warning"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_near_duplicates_do_not_depend_on_row_order(seed: int) -> None:
    df = _copies_frame(300, 12, 1)
    order = np.random.default_rng(seed).permutation(len(df))
    assert _near_dup_view(df.iloc[order].reset_index(drop=True), order) == _near_dup_view(
        df, np.arange(len(df))
    )


# -- label noise ---------------------------------------------------------------------------------


def test_excess_disagreement_counts_rows_below_each_threshold() -> None:
    p = np.array([0.9, 0.9, 0.1, 0.5])
    y = np.array([0, 1, 1, 1])  # probabilities of the given label: 0.1, 0.9, 0.1, 0.5
    (c,) = excess_disagreement(p, y, [0.2])
    assert c["observed"] == 2  # the two rows at 0.1
    assert c["expected"] == pytest.approx(0.1 + 0.1 + 0.1)  # each row's chance of such a label
    (c,) = excess_disagreement(p, y, [0.05])  # none below
    assert c["observed"] == 0


@settings(max_examples=50, deadline=None)
@given(
    p=st.lists(st.floats(0.001, 0.999), min_size=5, max_size=60),
    seed=st.integers(0, 1000),
)
def test_excess_disagreement_properties(p: list[float], seed: int) -> None:
    """Observed and expected counts grow with the threshold, and are invariant to row order."""
    pa = np.array(p)
    y = (np.random.default_rng(seed).random(len(pa)) < pa).astype(int)
    ts = [0.05, 0.1, 0.2, 0.3, 0.4]
    curve = excess_disagreement(pa, y, ts)
    assert all(a["observed"] <= b["observed"] for a, b in itertools.pairwise(curve))
    assert all(a["expected"] <= b["expected"] + 1e-9 for a, b in itertools.pairwise(curve))
    perm = np.random.default_rng(seed + 1).permutation(len(pa))
    again = excess_disagreement(pa[perm], y[perm], ts)
    for a, b in zip(curve, again, strict=True):
        assert a["observed"] == b["observed"]
        assert a["expected"] == pytest.approx(b["expected"])


# -- RONI ----------------------------------------------------------------------------------------


def test_roni_confirms_by_trigger_response_each_side() -> None:
    assert confirmed(0.40, 0.35, 0.0, 1.0, RO)  # the response drops by 5 points
    assert not confirmed(0.40, 0.36, 0.0, 1.0, RO)
    assert not confirmed(math.nan, 0.0, 0.0, 1.0, RO)  # not a trigger group


def test_roni_confirms_by_log_loss_each_side() -> None:
    assert confirmed(math.nan, math.nan, 0.021, 0.01, RO)  # more than 2 standard errors
    assert not confirmed(math.nan, math.nan, 0.02, 0.01, RO)
    assert not confirmed(math.nan, math.nan, -0.5, 0.01, RO)  # the group helps
    assert confirmed(math.nan, math.nan, 0.02, 0.01, RoniOptions(logloss_se=1.0))


def test_roni_says_when_the_rows_help_each_side() -> None:
    from tabguard.data_audit._roni_report import roni_report

    assert helps(-0.021, 0.01, RO) and not helps(-0.02, 0.01, RO) and not helps(0.5, 0.01, RO)

    def message(gain: float, response: tuple[float, float] = (math.nan, math.nan)) -> str:
        g = RoniGroup("A=1", np.arange(3), ["A"], [1], gain, 0.01, 0.6, 0.64, *response,
                      confirmed=confirmed(*response, gain, 0.01, RO), is_trigger=False)  # fmt: skip
        return roni_report([g], RO).findings[0].message

    # a loss 10 standard errors worse without the rows is not "no measurable impact"
    helped = "The rows help the held-out predictions: no sign of a negative impact."
    assert message(-0.0945).endswith(helped)
    assert message(-0.005).endswith("No measurable impact.")
    # confirmed by the response while removal costs held-out loss: not "negative impact"
    both = message(-0.0945, (0.30, 0.05))
    assert "Confirmed by the trigger response alone" in both and "Negative impact" not in both
    assert message(0.0, (0.30, 0.05)).endswith("Negative impact confirmed.")


@given(
    w=st.floats(0.0, 1.0),
    wo=st.floats(0.0, 1.0),
    gain=st.floats(-1.0, 1.0),
    se=st.floats(0.0, 1.0),
    d=st.floats(0.0, 1.0),
)
def test_roni_is_monotone_in_the_evidence(
    w: float, wo: float, gain: float, se: float, d: float
) -> None:
    before = confirmed(w, wo, gain, se, RO)
    assert confirmed(min(1.0, w + d), wo, gain, se, RO) >= before
    assert confirmed(w, max(0.0, wo - d), gain + d, se, RO) >= before
