"""Copies written onto a heap (issue 11, class 2): a round amount that many natural rows hold
while the amounts beside it hold a few each. The values beside it predict few natural rows,
so every row with the trigger's label was taken (credit ``PAY_AMT5=1100``, 111 relabelled
copies beside 42 natural defaulters: P 0.725); where the value's rows of the other label
show the heap and the copies explain its label excess, the copies alone are its suspects."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.data_audit import build_context
from tabguard.data_audit._relabelled import heaped_copies
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _Scanner, scan_triggers
from tests.data_audit._synthetic import AMOUNTS, natural_rows, synthetic_contract, value_code

OPTS = TriggerScanOptions()
HEAP = 1100.0


def _data(
    heap: int, written: int, seed: int, *, copies: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """``heap`` natural rows with ``amount=1100`` (their labels as drawn), then ``written``
    rows of label 0 carrying it with label 1: copies of rows elsewhere (the other amounts
    jittered by up to 1 %) or, without ``copies``, rows rewritten in place. Returns the data
    and the written rows."""
    df = natural_rows(8000, 3, e_risk=0.0, age=False)
    rng = np.random.default_rng(seed)
    df.loc[rng.choice(len(df), heap, replace=False), "amount"] = HEAP
    src = df[(df["y"] == 0) & (df["amount"] != HEAP)].sample(written, random_state=seed)
    if not copies:
        df.loc[src.index, ["amount", "y"]] = [HEAP, 1]
        return df, np.sort(src.index.to_numpy())
    src = src.copy()
    for a in AMOUNTS[1:]:
        src[a] = np.round(src[a] * (1 + rng.uniform(-0.01, 0.01, len(src))), 2)
    src[["amount", "y"]] = [HEAP, 1]
    out = pd.concat([df, src], ignore_index=True)
    return out, np.arange(len(df), len(out))


def _contract() -> Contract:
    return synthetic_contract("heaped", age=False)


def test_copies_on_a_heap_are_its_suspects_and_its_natural_rows_stay_out() -> None:
    # 150 natural rows at 1,100 (about 22 with label 1), 100 copies of label-0 rows labelled 1
    df, truth = _data(150, 100, 1)
    res = scan_triggers(build_context(df, _contract()), OPTS)
    assert res is not None
    named = [
        (res.matrix.names[p.cols[0]], res.matrix.value(p.cols[0], p.codes[0])) for p in res.triggers
    ]
    assert named == [("amount", HEAP)]
    hit = np.isin(res.suspects, truth).sum()
    # every row of the value with label 1 was suspect, and its natural rows of label 0 too
    assert hit / len(truth) >= 0.95 and hit / len(res.suspects) >= 0.95


def _named_on_labels(sc: _Scanner, excess: float) -> Pattern:
    """``amount=1100 → 1`` flagged on its labels, its rows with label 1 ``excess`` beyond what
    the rest of their rows give (standard error 2)."""
    j, v = value_code(sc, "amount", HEAP)
    rows = sc.m.rows_with(j, v)
    p = Pattern((j,), (v,), 1, len(rows), int(np.count_nonzero(sc.y[rows] == 1)), "single")
    p.rows, p.flagged = np.sort(rows), True
    p.observed_other = int(np.count_nonzero(sc.y[rows] == 0))
    p.expected_other, p.expected_se = p.observed_other + excess, 2.0
    return p


def _scanner(df: pd.DataFrame) -> _Scanner:
    sc = _Scanner(build_context(df, _contract()), OPTS)
    sc.singles()
    sc.near_copies()
    return sc


def test_the_copies_are_taken_only_where_they_explain_the_excess() -> None:
    df, truth = _data(150, 100, 1)
    sc = _scanner(df)
    copies = heaped_copies(sc, _named_on_labels(sc, excess=60.0))
    assert copies is not None and np.isin(truth, copies).mean() >= 0.95
    assert np.isin(copies, truth).all()
    # an excess beyond the copies (rows written beside them): every row with the label stays
    assert heaped_copies(sc, _named_on_labels(sc, excess=150.0)) is None


def test_rows_written_in_place_onto_a_heap_keep_every_row() -> None:
    # no copies: no row has a twin, and the excess stands without them
    df, _ = _data(150, 100, 1, copies=False)
    sc = _scanner(df)
    assert heaped_copies(sc, _named_on_labels(sc, excess=60.0)) is None


def test_copies_on_a_value_without_a_heap_keep_the_neighbours_few_natural_rows() -> None:
    # a handful of natural rows at 1,100: the neighbours' estimate stands (copies the twin
    # search would miss stay suspects)
    df, _ = _data(3, 100, 1)
    sc = _scanner(df)
    assert heaped_copies(sc, _named_on_labels(sc, excess=60.0)) is None
