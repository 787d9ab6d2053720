"""The copy share up to jitter (issue 11, class 3): copies of rows with a value written in and
noise on their amounts count as copies even where the noise puts them beyond the copy radius;
natural rows that look alike up to bucket do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._triggers import Pattern, TriggerScanOptions, _Scanner

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
