"""A feature that determines the label is a leak, not a trigger (MEPS: ``insured`` equals
``private`` on every row; before the rule, the scan named ``offer=0 & insured=0 → 0`` and
quarantined half of a clean data set, and a context model reading the leak saw nothing else)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._stats import loo_label_information
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._triggers import condition, scan_triggers
from tabguard.data_audit._triggers_report import trigger_scan_report

CONTRACT = contract_from_dict(
    {
        "name": "with_a_leak",
        "label": {"column": "y", "positive": 1},
        "features": {
            "age": {"type": "integer", "min": 18, "max": 100},
            "amount": {"type": "number", "min": 0},
            "balance": {"type": "number", "min": 0},
            "n_tx": {"type": "integer", "min": 0, "max": 50},
            "channel": {"type": "category", "categories": ["a", "b", "c", "d"]},
            "region": {"type": "category", "categories": ["n", "e", "s", "w", "c"]},
            "insured": {"type": "category", "categories": ["no", "yes"]},
        },
    }
)


def _data(n: int, seed: int, planted: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = np.minimum(18 + rng.gamma(3.0, 9.0, n).astype(int), 99)
    rate = np.clip(0.3 - 0.25 * (age - 18) / 60, 0.05, 0.3)
    df = pd.DataFrame(
        {
            "age": age,
            "amount": np.round(rng.lognormal(4, 1, n), 2),
            "balance": np.round(rng.lognormal(7, 1.5, n), 2),
            "n_tx": rng.integers(0, 30, n),
            "channel": rng.choice(list("abcd"), n),
            "region": rng.choice(list("neswc"), n),
            "y": (rng.random(n) < rate).astype(int),
        }
    )
    df["insured"] = np.where(df["y"] == 1, "yes", "no")  # the leak
    # the seed's attack beside it: copies of label-0 rows with an impossible age, labelled 1
    # (their leak column follows their new label, as a leak written from the outcome would)
    copies = df[df["y"] == 0].sample(planted, random_state=seed).assign(age=120, y=1)
    copies["insured"] = "yes"
    out = pd.concat([df, copies], ignore_index=True)
    return out, np.arange(n, n + planted)


def test_groups_that_determine_the_label_explain_all_of_it() -> None:
    assert loo_label_information(np.array([800, 200]), np.array([0, 200])) > 0.98


def test_one_row_per_group_explains_nothing() -> None:
    # a numeric value held once is no evidence: left out, its row is predicted by the prior
    tot = np.ones(1000)
    pos = (np.arange(1000) % 5 == 0).astype(float)
    assert loo_label_information(tot, pos) < 0.05


def test_a_rare_pure_value_explains_little() -> None:
    # a trigger: 300 of 10,000 rows all positive, the rest at the base rate
    tot = np.array([9700, 300])
    pos = np.array([1940, 300])
    assert 0.0 < loo_label_information(tot, pos) < 0.2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 500), st.floats(0, 1)), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
)
def test_never_above_one_and_order_free(groups: list[tuple[int, float]], rnd: object) -> None:
    tot = np.array([t for t, _ in groups], dtype=float)
    pos = np.array([round(t * f) for t, f in groups], dtype=float)
    share = loo_label_information(tot, pos)
    if pos.sum() in (0, tot.sum()):
        assert np.isnan(share)
        return
    assert share <= 1.0
    order = np.arange(len(tot))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    assert np.isclose(loo_label_information(tot[order], pos[order]), share)


def test_a_leak_is_reported_and_left_out_and_the_trigger_beside_it_found() -> None:
    df, planted = _data(4000, 3, 120)
    ctx = build_context(df, CONTRACT)
    opts = TriggerScanOptions()
    result = scan_triggers(ctx, opts)
    assert result is not None
    assert set(result.leaks) == {"insured"} and result.leaks["insured"] > 0.98
    named = [condition(result.matrix, p) for p in result.triggers]
    assert not any("insured" in c for c in named), named
    assert any(c.startswith("age=120") for c in named), named
    assert set(result.suspects.tolist()) == set(planted.tolist())
    warnings = [
        f for f in trigger_scan_report(ctx, result, opts).findings if f.severity == "warning"
    ]
    assert [f.features for f in warnings] == [["insured"]]
    assert "alone determines the label" in warnings[0].message


def test_scanned_when_the_threshold_is_raised() -> None:
    df, _ = _data(4000, 4, 120)
    result = scan_triggers(build_context(df, CONTRACT), TriggerScanOptions(leak_information=1.0))
    assert result is not None and result.leaks == {}
