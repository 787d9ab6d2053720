"""The copy share up to jitter (issue 11, class 3): copies of rows with a value written in and
noise on their amounts count as copies even where the noise puts them beyond the copy radius;
natural rows that look alike up to bucket do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _Scanner

OPTS = TriggerScanOptions()
AMOUNTS = ("amount", "balance", "paid", "limit")


def _contract() -> Contract:
    features: dict[str, dict[str, object]] = {c: {"type": "number", "min": 0} for c in AMOUNTS}
    features["status"] = {"type": "integer", "min": -2, "max": 8}
    features["kind"] = {"type": "category", "categories": ["a", "b", "c"]}
    return contract_from_dict(
        {"name": "tolerant", "label": {"column": "y", "positive": 1}, "features": features}
    )


def _background(n: int, seed: int, spread: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {c: np.round(rng.lognormal(8, spread, n), 2) for c in AMOUNTS}
        | {
            "status": rng.choice([-1, 0, 2], n, p=[0.3, 0.6, 0.1]),
            "kind": rng.choice(["a", "b", "c"], n),
        }
    )
    df["y"] = (rng.random(n) < np.where(df["status"] == 2, 0.5, 0.2)).astype(int)
    return df


def _pattern(sc: _Scanner, value: int, label: int) -> Pattern:
    """The scan's single-value pattern ``status = value`` with ``label``, its copy figures set
    as the copy radius left them for a jittered copy: significant, but a share of 0.28."""
    j = sc.m.names.index("status")
    code = int(np.flatnonzero(sc.m.uniques[j] == value)[0])
    rows = sc.m.rows_with(j, code)
    p = Pattern((j,), (code,), label, len(rows), int((sc.y[rows] == label).sum()), "single")
    p.rows = rows
    p.near_copy = 0.6  # sent to a copy check as copy-made
    p.twin_share, p.twin_share_baseline, p.p_twin, p.twin_tau = 0.28, 0.02, 1e-50, 0.0
    return p


def test_jittered_copies_beyond_the_radius_are_counted() -> None:
    df = _background(3000, 0, spread=3.0)
    rng = np.random.default_rng(1)
    copies = df[df["y"] == 0].sample(200, random_state=1).copy()
    for c in AMOUNTS:
        copies[c] = np.round(copies[c] * (1 + rng.normal(0, 0.01, len(copies))), 2)
    copies["status"], copies["y"] = 1, 0
    poisoned = pd.concat([df, copies], ignore_index=True)
    sc = _Scanner(build_context(poisoned, _contract()), OPTS)
    p = _pattern(sc, 1, 0)
    sc.tolerant_twins(p)
    # most copies keep every amount in its bucket (1 % noise, ratio 2); few random rows have
    # a look-alike up to bucket on four widely spread amounts (the baseline counts the 200
    # originals among the 2,800 rows with another status: 0.07)
    assert p.twin_tolerant
    assert p.twin_share is not None and p.twin_share >= 0.8
    assert p.twin_share_baseline is not None and p.twin_share_baseline < 0.1
    assert p.p_twin is not None and p.p_twin <= OPTS.copy_p
    # the suspects are the copies counted, none of the background (radius 0: none by distance)
    taken = sc.twin_rows(p)
    assert len(taken) >= 0.8 * len(copies) and taken.min() >= len(df)

    # a pattern the radius already confirms keeps the radius' figures
    q = _pattern(sc, 1, 0)
    q.twin_share = 0.9
    sc.tolerant_twins(q)
    assert not q.twin_tolerant and q.twin_share == 0.9


def test_natural_look_alikes_up_to_bucket_are_not_copies() -> None:
    """Coarse amounts (a narrow spread: a few buckets each): most natural rows equal a row with
    another status up to bucket, as often for status 2 as for the rest, so no excess."""
    df = _background(3000, 0, spread=0.3)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    j = sc.m.names.index("status")
    code = int(np.flatnonzero(sc.m.uniques[j] == 2)[0])
    p = _pattern(sc, 2, 1)
    near = sc.near_copies()[j]
    assert near[code, 1] / p.k >= 0.5  # the look-alikes are there
    sc.tolerant_twins(p)
    assert not p.twin_tolerant and p.twin_share == 0.28
    assert len(sc.twin_rows(p)) == 0


def _scanner(df: pd.DataFrame) -> _Scanner:
    return _Scanner(build_context(df, _contract()), OPTS)


def test_no_share_up_to_jitter_where_the_radius_found_nothing() -> None:
    df = _background(3000, 0, spread=3.0)
    copies = df[df["y"] == 0].sample(200, random_state=1).copy()
    copies["status"] = 1
    sc = _scanner(pd.concat([df, copies], ignore_index=True))
    p = _pattern(sc, 1, 0)
    p.p_twin = 0.5  # the distances say nothing
    sc.tolerant_twins(p)
    assert not p.twin_tolerant and p.twin_share == 0.28


def _amount_pairs(other_amount: float) -> pd.DataFrame:
    """200 rows with ``amount = 5200`` labelled 0, each with a look-alike (every other feature
    equal) whose amount is ``other_amount``."""
    df = _background(3000, 0, spread=3.0)
    pairs = df[df["y"] == 0].sample(200, random_state=2).copy()
    df = df.drop(index=pairs.index)  # no third look-alike at the original amount
    pairs["amount"] = 5200.0
    alike = pairs.copy()
    alike["amount"] = other_amount
    return pd.concat([df, pairs, alike], ignore_index=True)


def _amount_pattern(sc: _Scanner) -> Pattern:
    j = sc.m.names.index("amount")
    code = int(np.flatnonzero(sc.m.uniques[j] == 5200.0)[0])
    rows = sc.m.rows_with(j, code)
    p = Pattern((j,), (code,), 0, len(rows), int((sc.y[rows] == 0).sum()), "single")
    p.rows, p.near_copy = rows, 0.6
    p.twin_share, p.twin_share_baseline, p.p_twin, p.twin_tau = 0.28, 0.02, 1e-50, 0.0
    return p


def test_a_value_moved_within_its_bucket_is_not_a_written_value() -> None:
    """Look-alikes a few percent off on the pattern's own amount (5,100 against 5,200: one
    bucket) are jitter; a look-alike at 20,000 is a copy with the value written in."""
    near = _scanner(_amount_pairs(5100.0))
    p = _amount_pattern(near)
    near.tolerant_twins(p)
    assert not p.twin_tolerant
    far = _scanner(_amount_pairs(20000.0))
    q = _amount_pattern(far)
    far.tolerant_twins(q)
    assert q.twin_tolerant and q.twin_share is not None and q.twin_share >= 0.9


def test_rows_of_contract_breaking_values_are_no_ones_original() -> None:
    """Copies with ``status = 99`` (outside the contract) written in make their originals look
    copied up to jitter; those rows are not copies of them."""
    df = _background(3000, 0, spread=3.0)
    src = df[(df["y"] == 0) & (df["status"] == 0)].sample(600, random_state=3)
    copies = src.copy()
    copies["status"] = 99
    poisoned = pd.concat([df, copies], ignore_index=True)
    sc = _scanner(poisoned)
    p = _pattern(sc, 0, 0)
    # a few have a natural look-alike with another status, not their copy
    assert sc.tolerant_copy_rows(p, src.index.to_numpy()).sum() <= 0.05 * len(src)
    sc.tolerant_twins(p)
    assert not p.twin_tolerant
