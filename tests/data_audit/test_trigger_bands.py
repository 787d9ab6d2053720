"""Band triggers and camouflage in the trigger scan (issue 11, classes 1 and 3): the band
candidate rule, its counterfactual values, merging, naming, and which rows of a confirmed
trigger go to quarantine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import contract_from_dict
from tabguard.data_audit import audit_data, build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _merge_into_bands, _outward, _Scanner, condition
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.redteam import poison

CONTRACT = contract_from_dict(
    {
        "name": "bands",
        "label": {"column": "y", "positive": 1},
        "features": {
            "age": {"type": "integer", "min": 0, "max": 100},
            "amount": {"type": "integer", "min": 0},
        },
    }
)


def _trend(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Ages 20-79 with a positive rate rising smoothly with age (a natural trend, no band)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 80, n)
    rate = 0.1 + 0.4 * (age - 20) / 60
    return pd.DataFrame(
        {"age": age, "amount": rng.integers(0, 50_000, n), "y": (rng.random(n) < rate).astype(int)}
    )


def _with_band(df: pd.DataFrame, lo: int, hi: int, k: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    extra = df.sample(k, random_state=seed).copy()
    extra["age"] = rng.integers(lo, hi + 1, k)
    extra["y"] = 1
    return pd.concat([df, extra], ignore_index=True)


def _bands(df: pd.DataFrame, **opts: object) -> tuple[_Scanner, list[Pattern]]:
    sc = _Scanner(build_context(df, CONTRACT), TriggerScanOptions(**opts))  # type: ignore[arg-type]
    return sc, sc.bands(set())


def test_a_planted_band_is_the_best_candidate_and_named_as_a_range() -> None:
    sc, cands = _bands(_with_band(_trend(), 40, 47, 240))
    best = max((p for p in cands if p.label == 1), key=lambda p: p.cheap_score)
    assert condition(sc.m, best) == "age in [40, 47]"
    assert sc.tests["band"] > 0


def test_a_smooth_trend_scores_far_below_a_band() -> None:
    sc, natural = _bands(_trend())
    _, planted = _bands(_with_band(_trend(), 40, 47, 240))
    # inside the range a trend passes through every run (at its ends the sides are one-sided:
    # those runs are candidates, and the counterfactual test decides)
    last = len(sc.m.counts[0]) - 1
    inner = [p for p in natural if p.label == 1 and p.band and 0 < p.band[0] <= p.band[1] < last]
    assert max(p.cheap_score for p in inner) < 0.5 * max(
        p.cheap_score for p in planted if p.label == 1
    )


def test_band_candidates_skip_flagged_values_and_fine_features() -> None:
    df = _with_band(_trend(), 40, 47, 240)
    sc = _Scanner(build_context(df, CONTRACT), TriggerScanOptions())
    j = sc.m.names.index("age")
    code43 = int(np.flatnonzero(sc.m.uniques[j] == 43)[0])
    cands = sc.bands({(j, code43)})
    around = [p for p in cands if p.band is not None and p.band[0] <= code43 <= p.band[1]]
    assert around and all(code43 in p.band_skip for p in around)
    assert all(43 not in set(df["age"].iloc[sc.rows_of(p)]) for p in around)
    # `amount` has ~6000 values: more than band_max_values, no band candidates
    assert not [p for p in cands if sc.m.names[p.cols[0]] == "amount"]


def test_band_counterfactual_values_lie_outside_the_band_on_both_sides() -> None:
    sc, _ = _bands(_trend())
    j = sc.m.names.index("age")
    ids, w = sc._band_replacements(j, 20, 27, want=10)  # ids are value codes: ages 40-47
    values = sc.m.uniques[j][ids]
    assert ((values < 40) | (values > 47)).all()
    assert (values < 40).any() and (values > 47).any()
    assert w.sum() == pytest.approx(1.0)
    # at least as many rows as the band, at least 1 % of the rows
    assert sc.m.counts[j][ids].sum() >= max(50, 0.01 * sc.n)


def test_flagged_singles_inside_or_next_to_a_band_merge_into_it() -> None:
    sc, _ = _bands(_trend())
    band = Pattern((0,), (20,), 1, 0, 0, "band")
    band.band = (20, 27)
    band.rows = sc.rows_of(band)
    inside = Pattern((0,), (28,), 1, 0, 0, "single")  # next to the band
    inside.rows = sc.rows_of(inside)
    other_label = Pattern((0,), (24,), 0, 0, 0, "single")
    elsewhere = Pattern((0,), (40,), 1, 0, 0, "single")
    left = _merge_into_bands(sc, [band], [inside, other_label, elsewhere])
    assert left == [other_label, elsewhere]
    assert band.band == (20, 28) and set(inside.rows) <= set(band.rows)


def _pr(suspects: list[int], truth: np.ndarray) -> tuple[float, float]:
    s, t = set(suspects), set(truth.tolist())
    return len(s & t) / max(len(s), 1), len(s & t) / max(len(t), 1)


@pytest.mark.parametrize(
    ("trigger", "target", "source"),
    [
        ({"country": "ZZ"}, 0, 1),  # breaks the contract: every row with it was written
        ({"account_age_days": 3808}, 1, "target"),  # in range: the copies among its rows
    ],
)
def test_camouflaged_rows_of_a_trigger_are_quarantined(
    trigger: dict[str, object], target: int, source: object
) -> None:
    df = make_card_fraud(8000, random_state=2)
    c = card_fraud_contract()
    attack = poison(
        df, c, trigger, n_rows=150, target=target, source=source, shuffle=True, random_state=3
    )
    data = attack.data
    # 15 % of the written rows keep the other label so that the value is not label-pure
    camo = np.random.default_rng(0).choice(attack.poisoned_rows, 22, replace=False)
    data.loc[camo, "is_fraud"] = 1 - target
    result = audit_data(data, c, checks=["integrity", "trigger_scan"])
    precision, recall = _pr(result.suspicious_rows, attack.poisoned_rows)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    assert set(camo.tolist()) <= set(result.suspicious_rows)


def _outward_by_steps(
    cnt: np.ndarray, allowed: np.ndarray, lo: int, hi: int, want: float
) -> list[int]:
    """The rule of _outward one step at a time: lo - s then hi + s, until want rows."""
    chosen: list[int] = []
    total, left, right = 0.0, lo - 1, hi + 1
    while total < want and (left >= 0 or right < len(cnt)):
        for c in (left, right):
            if 0 <= c < len(cnt) and allowed[c]:
                chosen.append(c)
                total += cnt[c]
        left, right = left - 1, right + 1
    return chosen


def test_outward_takes_the_values_step_by_step_until_it_holds_the_rows_wanted() -> None:
    rng = np.random.default_rng(5)
    for trial in range(300):
        size = int(rng.integers(1, 400)) if trial % 10 else int(rng.integers(2000, 20000))
        cnt = rng.integers(0, 5, size).astype(float)
        allowed = rng.random(size) < 0.7
        lo = int(rng.integers(0, size))
        hi = min(size - 1, lo + int(rng.integers(0, 5)))
        want = float(rng.choice([0.0, 1.0, 30.0, 400.0, 5000.0, 1e9]))
        ids, w = _outward(cnt, allowed, lo, hi, want)
        assert ids.tolist() == _outward_by_steps(cnt, allowed, lo, hi, want)
        if cnt[ids].sum() > 0:
            np.testing.assert_allclose(w, cnt[ids] / cnt[ids].sum())


def test_a_value_pushed_towards_the_label_its_neighbours_lack_is_a_candidate() -> None:
    # The positive rate climbs from 0.1 to 0.9 with age; 50 rows are rewritten in place to
    # age 75 with label 0. Age 75 then holds 45 % label 0: under the overall 50 %, but far
    # above the 17 % its neighbours predict - a candidate, whatever the overall rate.
    rng = np.random.default_rng(0)
    age = rng.integers(20, 80, 6000)
    df = pd.DataFrame(
        {
            "age": age,
            "amount": rng.integers(0, 50_000, 6000),
            "y": (rng.random(6000) < 0.1 + 0.8 * (age - 20) / 60).astype(int),
        }
    )
    written = rng.choice(np.flatnonzero(df["age"] < 60), 50, replace=False)
    df.loc[written, ["age", "y"]] = [75, 0]
    sc = _Scanner(build_context(df, CONTRACT), TriggerScanOptions())
    share = float((df.loc[df["age"] == 75, "y"] == 0).mean())
    assert share < 1 - sc.base1
    code = int(np.searchsorted(sc.m.uniques[0], 75))
    assert any(p.cols == (0,) and p.codes == (code,) and p.label == 0 for p in sc.singles())


def _edge_step(n: int = 6000, seed: int = 2) -> pd.DataFrame:
    """Ages 20-79; the oldest third of the rows (60-79) almost never carry label 1: a natural
    step at the edge of the range (a saturated pixel, a top-coded amount), no attack."""
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 80, n)
    rate = np.where(age >= 60, 0.005, 0.3)
    return pd.DataFrame(
        {"age": age, "amount": rng.integers(0, 50_000, n), "y": (rng.random(n) < rate).astype(int)}
    )


def test_runs_holding_the_bulk_of_the_rows_are_no_band_candidates() -> None:
    df = _edge_step()
    # without the bound the step's runs are candidates for label 0 (sides on one side only)
    sc_all, unbounded = _bands(df, band_max_share=1.0)
    assert any(p.label == 0 and p.n > 0.2 * sc_all.N for p in unbounded)
    sc, bounded = _bands(df)
    assert bounded and all(p.n <= 0.2 * sc.N for p in bounded)
    # a planted band of a few hundred rows stays a candidate
    sc, cands = _bands(_with_band(_trend(), 40, 47, 240))
    best = max((p for p in cands if p.label == 1), key=lambda p: p.cheap_score)
    assert condition(sc.m, best) == "age in [40, 47]"
