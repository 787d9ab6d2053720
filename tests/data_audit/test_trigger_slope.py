"""A value written in place whose labels stop following the rest of the row (issue 11,
class 3): rows an attacker gave the target label, 10-20 % camouflaged, beside natural rows of
the value, on a feature the rest of the row does not predict (no copies, and the labels'
effect diluted by the natural rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._triggers import (
    Pattern,
    TriggerScanOptions,
    _Scanner,
    condition,
    scan_triggers,
    written_slope_evidence,
)

COUNTRIES = [f"c{i}" for i in range(8)]
CONTRACT = contract_from_dict(
    {
        "name": "payments",
        "label": {"column": "y", "positive": 1},
        "features": {
            "amount": {"type": "number", "min": 0},
            "hour": {"type": "integer", "min": 0, "max": 23},
            "n_tx": {"type": "integer", "min": 0, "max": 50},
            "channel": {"type": "category", "categories": ["a", "b", "c", "d"]},
            "merchant": {"type": "category", "categories": ["m0", "m1", "m2", "m3", "m4"]},
            "country": {"type": "category", "categories": COUNTRIES},
        },
    }
)


def _payments(n: int = 6_000, seed: int = 0) -> pd.DataFrame:
    """Payments whose label is additive in the log-odds of its features (as the synthetic
    fraud data's): the country does not depend on the rest of the row."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(list("abcd"), n, p=[0.35, 0.3, 0.25, 0.1])
    merchant = rng.choice(["m0", "m1", "m2", "m3", "m4"], n)
    country = rng.choice(COUNTRIES, n, p=[0.5, 0.1, 0.1, 0.08, 0.08, 0.06, 0.05, 0.03])
    amount = np.round(rng.lognormal(3.5, 1.0, n), 2)
    hour = rng.integers(0, 24, n)
    n_tx = rng.poisson(2.0, n)
    logit = (
        -4.2
        + 1.6 * (channel == "c")
        + 1.2 * (channel == "d")
        + 0.9 * np.isin(merchant, ["m3", "m4"])
        + 0.5 * np.log1p(amount / 50)
        + 0.25 * n_tx
        + 0.8 * (hour <= 5)
        + 0.6 * (country != "c0")
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "amount": amount,
            "hour": hour,
            "n_tx": n_tx,
            "channel": channel,
            "merchant": merchant,
            "country": country,
            "y": y,
        }
    )


def _written(
    df: pd.DataFrame, value: str, k: int, seed: int = 1
) -> tuple[pd.DataFrame, np.ndarray]:
    """``country=value`` written in place into ``k`` rows of label 0, labelled 1, 12 % of them
    left on label 0 (camouflage); returns the data and the rows written."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(df["y"].to_numpy() == 0), k, replace=False))
    out = df.copy()
    out.loc[rows, "country"] = value
    out.loc[rows, "y"] = 1
    out.loc[rng.choice(rows, round(0.12 * k), replace=False), "y"] = 0
    return out, rows


def test_a_value_written_in_place_with_camouflage_is_named_by_its_flat_labels() -> None:
    # 150 rows of label 0 given country c4 and label 1 (12 % left on 0), beside ~480 natural
    # c4 rows: the labels' effect stays diluted under the written-rows rule (about 0.3), there
    # are no copies, and the country does not depend on the rest of the row. The written
    # rows' labels do not follow their other features: the value's slope is flat.
    data, truth = _written(_payments(), "c4", 150)
    result = scan_triggers(build_context(data, CONTRACT), TriggerScanOptions())
    names = [condition(result.matrix, p) for p in result.triggers]
    assert names == ["country='c4'"], names
    (p,) = result.triggers
    assert p.written and p.p_slope <= p.threshold
    assert np.isin(truth, result.suspects).mean() >= 0.95


def test_natural_values_keep_their_slope() -> None:
    # The same data without the write: no coded value's labels flatten beyond the others'
    # (each value's slope against the null of the other values, as the rule measures it).
    sc = _Scanner(build_context(_payments(), CONTRACT), TriggerScanOptions())
    for j, v in sc.natural_scores():
        p = Pattern((j,), (v,), 1, 100, 50, "single")
        sc.slope_mixture(p)
        assert p.p_slope > 1e-3, (sc.m.names[j], sc.m.uniques[j][v], p.p_slope)


def test_the_slope_rule_needs_a_label_hint() -> None:
    p = Pattern((0,), (0,), 1, 100, 50, "single", p_slope=1e-12, threshold=1e-6)
    p.effect, p.excess, p.p_label = 0.05, 0.05, 0.5
    assert not written_slope_evidence(p, TriggerScanOptions())
    p.effect, p.p_label = 0.3, 1e-4
    assert written_slope_evidence(p, TriggerScanOptions())
