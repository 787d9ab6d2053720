"""Triggers on a value that occurs naturally (issue 11, class 2): copies labelled against their
originals are found by the direction of copying, and a trigger decided late does not leave the
values beside it named."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, copy_decision
from tabguard.data_audit._triggers import (
    _label_evidence,
    _retest_beside_late,
    _Scanner,
    scan_triggers,
)
from tests.data_audit._synthetic import natural_rows, synthetic_contract, value_code

OPTS = TriggerScanOptions()


def _contract() -> Contract:
    return synthetic_contract("flips", age=False)


def _natural(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Rows whose label follows ``status``; ``kind='e'`` (8 % of the rows) is naturally a
    little riskier than the others (25 % positives against 15 %). Four widely spread amounts:
    few rows are look-alikes up to the amounts' buckets."""
    return natural_rows(n, seed, e_risk=0.1, age=False)


def _flipped(df: pd.DataFrame, k: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """``k`` exact copies of positive rows of other kinds with ``kind='e'`` written in and
    labelled 0 (the majority label): the value's share of label 0 stays under the base rate's,
    so neither its labels nor its lean make it a candidate. Returns the data and the copies'
    row positions."""
    src = df[(df["y"] == 1) & (df["kind"] != "e")].sample(k, random_state=seed).copy()
    src["kind"] = "e"
    src["y"] = 0
    out = pd.concat([df, src], ignore_index=True)
    return out, np.arange(len(df), len(out))


def test_the_written_value_of_copies_labelled_against_their_originals_is_a_flip_hub() -> None:
    df, _ = _flipped(_natural(), 150)
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.near_copies()
    hubs = sc.flip_hubs()
    j, e = value_code(sc, "kind", "e")
    assert (j, e, 0) in hubs
    # the originals' kinds hold the other side of each pair: their twins concentrate on 'e'
    # and their share is the baseline they do not stand out of
    assert not [key for key in hubs if key[0] == j and key != (j, e, 0)]
    # without the copies, no value of the feature flips beyond its others
    clean = _Scanner(build_context(_natural(), _contract()), OPTS)
    clean.near_copies()
    assert not [key for key in clean.flip_hubs() if key[0] == j]


def test_copies_labelled_against_their_originals_are_quarantined_not_the_natural_rows() -> None:
    df, truth = _flipped(_natural(), 150)
    res = scan_triggers(build_context(df, _contract()), OPTS)
    assert res is not None
    named = [(res.matrix.names[p.cols[0]], p.label) for p in res.triggers]
    assert ("kind", 0) in named
    # no original's kind is named with label 1
    assert not [n for n in named if n[1] == 1]
    sus = res.suspects
    hit = np.isin(sus, truth).sum()
    assert hit / len(truth) >= 0.9  # recall
    assert hit / max(len(sus), 1) >= 0.9  # precision: the natural rows of 'e' stay out


def test_clean_data_has_no_flip_trigger() -> None:
    res = scan_triggers(build_context(_natural(seed=3), _contract()), OPTS)
    assert res is not None and not res.triggers


def _flip_pattern(share: float, baseline: float, p_twin: float) -> Pattern:
    p = Pattern((0,), (1,), 0, 600, 580, "single")
    p.p_label, p.threshold = 0.5, 1e-6
    p.twin_share, p.twin_share_baseline, p.p_twin = share, baseline, p_twin
    return p


def test_copy_decision_of_flipped_copies_needs_no_copy_share_but_the_excess() -> None:
    # 43 % of the labelled rows copies: under copy_share, decided by the flip test
    p = _flip_pattern(0.43, 0.02, 1e-40)
    assert not copy_decision(p, OPTS, 0.97)[1]
    p.p_flip = 1e-30
    assert copy_decision(p, OPTS, 0.97)[1]
    # the copies must still stand out of the look-alikes' baseline by copy_excess ...
    p.twin_share_baseline = 0.3  # (0.43 - 0.3) / 0.7 < 0.25
    assert not copy_decision(p, OPTS, 0.97)[1]
    # ... significantly
    p.twin_share_baseline, p.p_twin = 0.02, 0.01
    assert not copy_decision(p, OPTS, 0.97)[1]


AGE_CONTRACT = contract_from_dict(
    {
        "name": "ages",
        "label": {"column": "y", "positive": 1},
        "features": {
            "age": {"type": "integer", "min": 0, "max": 100},
            "amount": {"type": "number", "min": 0},
            "balance": {"type": "number", "min": 0},
        },
    }
)


def test_a_value_beside_a_trigger_decided_late_is_tested_again_without_it() -> None:
    rng = np.random.default_rng(5)
    n = 6000
    df = pd.DataFrame(
        {
            "age": rng.integers(20, 80, n),
            "amount": np.round(rng.lognormal(8, 2, n), 2),
            "balance": np.round(rng.lognormal(9, 2, n), 2),
            "y": (rng.random(n) < 0.15).astype(int),
        }
    )
    extra = df.sample(300, random_state=6).copy()
    extra["age"], extra["y"] = 50, 1
    df = pd.concat([df, extra], ignore_index=True)
    sc = _Scanner(build_context(df, AGE_CONTRACT), OPTS)
    sc.singles()  # the tests counted: the thresholds
    alpha = OPTS.alpha / 4
    j = sc.m.names.index("age")
    code = {int(v): i for i, v in enumerate(sc.m.uniques[j])}
    rows = np.flatnonzero(sc.m.codes[:, j] == code[49])
    beside = Pattern((j,), (code[49],), 0, len(rows), int((sc.y[rows] == 0).sum()), "single")
    _label_evidence(sc, beside, alpha)
    drawn = beside.effect  # its counterfactual drew age 50, and its positives
    beside.flagged = True  # as if named before the trigger was known
    rows = np.flatnonzero(sc.m.codes[:, j] == code[50])
    late = Pattern((j,), (code[50],), 1, len(rows), int(sc.y[rows].sum()), "single")
    late.flagged = True
    other = Pattern((1,), (0,), 0, 10, 10, "single")
    other.flagged = True  # another feature: not tested again
    assert _retest_beside_late(sc, [beside, other], [late], alpha, OPTS)
    # measured again without age 50 among its replacements (the context model still smooths
    # the spike over its neighbours a little)
    assert beside.effect < drawn - 0.15
    assert other.flagged and math.isnan(other.effect)
    assert sc.excluded == set()  # the scan's exclusions are given back
    assert not _retest_beside_late(sc, [beside], [], alpha, OPTS)
